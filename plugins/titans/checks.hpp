// The Titans family's library checks (run by `host conformance`).
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::titans {

std::vector<Check> family_checks();

}  // namespace mixlab::titans
