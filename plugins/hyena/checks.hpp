// Hyena family checks (fft vs direct, prefix consistency, causality, decode,
// fftconv vs a Toeplitz matrix); see checks.cpp.
#pragma once

#include <mixlab/plugin.hpp>

#include <vector>

namespace mixlab::hyena {

const std::vector<Check>& family_checks();

}  // namespace mixlab::hyena
