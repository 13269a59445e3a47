// The attention family's library checks (run by `host conformance`).
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::attention {

std::vector<Check> family_checks();

}  // namespace mixlab::attention
