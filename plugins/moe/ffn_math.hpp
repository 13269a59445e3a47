// The position-wise FFN shared by `mlp` and by each expert of `moe`.
#pragma once

#include "swiglu_kernel.hpp"

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

// How the gated unit is computed: `fused` (swiglu_kernel.hpp) or the composed `reference`; the
// config key `kernels` of `mlp` and `moe`, for A/B on the same weights.
enum class Kernels { reference, fused };

inline Kernels parse_kernels(const Config& c) {
  return c.get_choice("kernels", "fused", {"fused", "reference"}) == "fused" ? Kernels::fused : Kernels::reference;
}

inline torch::Tensor activate(const torch::Tensor& h, const std::string& activation) {
  if (activation == "gelu" || activation == "geglu") return torch::gelu(h);
  if (activation == "relu") return torch::relu(h);
  return torch::silu(h);  // silu, swiglu
}

// act(a) * b; SwiGLU through the fused kernel where it applies.
inline torch::Tensor gated_unit(const torch::Tensor& a, const torch::Tensor& b, const std::string& activation,
                                Kernels kernels) {
  if (kernels == Kernels::fused && activation == "swiglu" && SwiGluFunction::applies(a, b))
    return SwiGluFunction::apply(a, b);
  return activate(a, activation) * b;
}

// y = W_out act(W_in x + b_in) [* (W_gate x + b_gate)] + b_out, with `project(v, w, b)` the
// linear map; undefined tensors are absent. One body for the single and the stacked form.
template <class Project>
torch::Tensor apply_with(const Project& project, const torch::Tensor& x, const std::string& activation,
                         Kernels kernels, const torch::Tensor& w_in, const torch::Tensor& b_in,
                         const torch::Tensor& w_gate, const torch::Tensor& b_gate, const torch::Tensor& w_out,
                         const torch::Tensor& b_out) {
  auto a = project(x, w_in, b_in);
  auto h = is_gated(activation) ? gated_unit(a, project(x, w_gate, b_gate), activation, kernels)
                                : activate(a, activation);
  return project(h, w_out, b_out);
}

// One FFN: weights (hidden, d) and (d, hidden), x (..., d).
inline torch::Tensor apply(const torch::Tensor& x, const std::string& activation, Kernels kernels,
                           const torch::Tensor& w_in, const torch::Tensor& b_in, const torch::Tensor& w_gate,
                           const torch::Tensor& b_gate, const torch::Tensor& w_out, const torch::Tensor& b_out) {
  auto linear = [](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor& b) {
    return torch::linear(v, w, b);
  };
  return apply_with(linear, x, activation, kernels, w_in, b_in, w_gate, b_gate, w_out, b_out);
}

// E FFNs without biases at once: weights stacked (E, hidden, d) and (E, d, hidden).
// x (N, d): returns (E, N, d), every FFN applied to every row; x (E, M, d): FFN e
// applied to the rows x[e] (one batched matmul per projection).
inline torch::Tensor apply_stacked(const torch::Tensor& x, const std::string& activation, Kernels kernels,
                                   const torch::Tensor& w_in, const torch::Tensor& w_gate, const torch::Tensor& w_out) {
  auto batched = [](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor&) {
    return torch::matmul(v, w.transpose(-1, -2));
  };
  torch::Tensor none;
  return apply_with(batched, x, activation, kernels, w_in, none, w_gate, none, w_out, none);
}

}  // namespace mixlab::ffn
