// The Mamba family checks, run by `host conformance` after the generic suite.
#pragma once

#include <mixlab/plugin.hpp>

#include <vector>

namespace mixlab::mamba {

std::vector<Check> family_checks();

}  // namespace mixlab::mamba
