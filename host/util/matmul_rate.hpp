// The machine's measured matrix-multiply rate: the denominator of model FLOPs
// utilisation in manifests and of "fraction of peak" in benchmarks.
#pragma once

#include <torch/torch.h>

namespace mixlab {

// Median GFLOP/s of an n x n x n matmul in `dtype` on `device` with the current
// ATen thread count (a few warm-up runs, then `repeats` timed ones), the faster of
// the layouts a·bᵀ and aᵀ·b (matmul_rate.cpp says why).
double measure_matmul_gflops(int64_t n = 1024, torch::ScalarType dtype = torch::kFloat32,
                             torch::Device device = torch::kCPU, int repeats = 5);

}  // namespace mixlab
