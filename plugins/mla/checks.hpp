// The MLA family's library checks (run by `host conformance`).
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::mla {

std::vector<Check> family_checks();

}  // namespace mixlab::mla
