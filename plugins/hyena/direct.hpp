// `direct`: the long convolution as an explicit causal convolution, the
// reference. O(T^2) per channel; exactly causal (an output never reads a
// later input, so perturbing the future leaves the past bitwise unchanged).
#pragma once

#include "common.hpp"

namespace mixlab::hyena {

// y_t = sum_{s <= t} k_{t-s} u_s for the last n_out positions t of u.
// u: (B, C, L), k: (C, L) -> (B, C, n_out). The decode step calls it with the
// history as u and n_out new positions; the forward with n_out = L.
inline torch::Tensor causal_conv_direct(const torch::Tensor& u, const torch::Tensor& k, int64_t n_out) {
  const int64_t channels = u.size(1);
  // Cross-correlation with the flipped filter; n_out-1 zeros on the left give
  // position L-n_out+j the window u[L-n_out+j-(L-1) .. L-n_out+j].
  auto padded = torch::constant_pad_nd(u, {n_out - 1, 0});
  return torch::nn::functional::conv1d(padded, k.flip(-1).unsqueeze(1),
                                      torch::nn::functional::Conv1dFuncOptions().groups(channels));
}

struct DirectConv {
  static constexpr const char* impl = "direct";
  static constexpr const char* description =
      "Hyena order-N operator, long convolutions as explicit causal convolutions (reference, exact causality)";
  static constexpr double causality_bound = 0.0;

  static torch::Tensor apply(const torch::Tensor& u, const torch::Tensor& k) { return causal_conv_direct(u, k, u.size(2)); }

  // Multiply-adds per channel for one token at seq_len: on average (seq_len+1)/2 taps.
  static double flops_per_channel(int64_t seq_len) { return static_cast<double>(seq_len + 1); }
};

}  // namespace mixlab::hyena
