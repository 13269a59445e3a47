// The FFN family's own checks (mlp and moe invariants), run by `host conformance`.
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::moe {

std::vector<Check> family_checks();

}  // namespace mixlab::moe
