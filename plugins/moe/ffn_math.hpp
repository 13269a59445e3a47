// The position-wise FFN shared by `mlp` and by each expert of `moe`.
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::ffn {

inline const std::vector<std::string>& activations() {
  static const std::vector<std::string> names{"gelu", "relu", "silu", "swiglu", "geglu"};
  return names;
}

inline bool is_gated(const std::string& activation) { return activation == "swiglu" || activation == "geglu"; }

// Default hidden width: 4 d, or for gated units 8/3 d rounded up to a multiple
// of 8, which keeps the parameter count of the two forms about equal.
inline int64_t default_hidden(int64_t d_model, const std::string& activation) {
  if (!is_gated(activation)) return 4 * d_model;
  int64_t h = (8 * d_model + 2) / 3;
  return (h + 7) / 8 * 8;
}

inline torch::Tensor activate(const torch::Tensor& h, const std::string& activation) {
  if (activation == "gelu" || activation == "geglu") return torch::gelu(h);
  if (activation == "relu") return torch::relu(h);
  return torch::silu(h);  // silu, swiglu
}

// y = W_out act(W_in x + b_in) [* (W_gate x + b_gate)] + b_out. Undefined tensors are absent.
inline torch::Tensor apply(const torch::Tensor& x, const std::string& activation, const torch::Tensor& w_in,
                           const torch::Tensor& b_in, const torch::Tensor& w_gate, const torch::Tensor& b_gate,
                           const torch::Tensor& w_out, const torch::Tensor& b_out) {
  auto h = activate(torch::linear(x, w_in, b_in), activation);
  if (is_gated(activation)) h = h * torch::linear(x, w_gate, b_gate);
  return torch::linear(h, w_out, b_out);
}

}  // namespace mixlab::ffn
