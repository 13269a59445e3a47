// Counts and byte sizes for people: "1.2M", "3.40B", "1.6 GB", "262.1 KB".
#pragma once

#include <string>

namespace mixlab {

// Parameters, tokens, FLOPs: K, M, B with one decimal (two for B); plain below 1000.
std::string human_count(double n);
// Bytes in powers of 1000: KB, MB, GB with one decimal; "N B" below 1000.
std::string human_bytes(double n);

}  // namespace mixlab
