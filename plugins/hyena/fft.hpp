// `fft`: the long convolution through the FFT, O(T log T) per channel.
// Zero-padding to n = 2T makes the circular convolution a linear one, so the
// result is causal up to rounding: the FFT spreads each input's rounding error
// over all outputs (about 1e-7 relative in float32, 1e-16 in float64).
#pragma once

#include "common.hpp"

namespace mixlab::hyena {

// y_t = sum_{s <= t} k_{t-s} u_s. u: (B, C, T), k: (C, T) -> (B, C, T).
inline torch::Tensor causal_conv_fft(const torch::Tensor& u, const torch::Tensor& k) {
  const int64_t T = u.size(-1), n = 2 * T;
  // torch.fft has no bfloat16/float16 kernels: transform in float32 at least.
  auto compute = torch::promote_types(u.scalar_type(), torch::kFloat32);
  auto u_f = torch::fft::rfft(u.to(compute), n);
  auto k_f = torch::fft::rfft(k.to(compute), n);
  return torch::fft::irfft(u_f * k_f, n).slice(-1, 0, T).to(u.scalar_type());
}

struct FftConv {
  static constexpr const char* impl = "fft";
  static constexpr const char* description =
      "Hyena order-N operator, long convolutions by rfft/irfft with n = 2T (causal up to rounding)";
  // Leakage into earlier outputs relative to max(1, max|y|): the float32 bound
  // (mixers-research.md section 4/9; measured 2.5e-7 at T = 256). In float64 the
  // leakage is ~1e-16, far inside it; the family check `causality` holds float32.
  static constexpr double causality_bound = 1e-5;

  static torch::Tensor apply(const torch::Tensor& u, const torch::Tensor& k) { return causal_conv_fft(u, k); }

  // Three real FFTs of size 2T (u, k, inverse) at ~2.5 n log2 n FLOPs each, plus
  // the complex product, spread over the T tokens.
  static double flops_per_channel(int64_t seq_len) {
    double n = 2.0 * static_cast<double>(seq_len);
    return (3 * 2.5 * n * std::log2(n) + 6 * (n / 2 + 1)) / static_cast<double>(seq_len);
  }
};

}  // namespace mixlab::hyena
