#include "util/matmul_rate.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace mixlab {

double measure_matmul_gflops(int64_t n, torch::ScalarType dtype, torch::Device device, int repeats) {
  torch::NoGradGuard no_grad;
  // An own generator: drawing from the global one would shift every dropout mask after a resume.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto random = [&] { return torch::randn({n, n}, gen, torch::kFloat32).to(device, dtype); };
  auto a = random(), b = random();
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  // The faster of a·bᵀ (a linear layer's forward) and aᵀ·b (its weight gradient): without
  // bfloat16 instructions (AVX2) LibTorch's bfloat16 a·b with both operands row-major is
  // 10-20x slower than these, and a peak should not be the worst layout.
  double best = 0;
  for (bool forward : {true, false}) {
    auto run = [&] { return forward ? torch::mm(a, b.t()) : torch::mm(a.t(), b); };
    for (int i = 0; i < 2; ++i) run();
    sync();
    std::vector<double> seconds;
    for (int i = 0; i < repeats; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      auto c = run();
      sync();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(seconds.begin(), seconds.begin() + repeats / 2, seconds.end());
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / seconds[repeats / 2] / 1e9);
  }
  return best;
}

}  // namespace mixlab
