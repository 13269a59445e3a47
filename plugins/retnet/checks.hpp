// The RetNet family checks, run by `host conformance` (see checks.cpp).
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::retnet {

std::vector<Check> family_checks();

}  // namespace mixlab::retnet
