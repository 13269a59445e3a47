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
  for (int i = 0; i < 2; ++i) torch::mm(a, b);
  sync();
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto c = torch::mm(a, b);
    sync();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + repeats / 2, seconds.end());
  return 2.0 * static_cast<double>(n * n * n) / seconds[repeats / 2] / 1e9;
}

}  // namespace mixlab
