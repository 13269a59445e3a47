// `recurrent`: token by token, S_n = γ S_(n-1) + k_nᵀ v_n, o_n = q_n S_n
// (inclusive: output n sees token n). O(1) memory per step in T, but a
// sequential loop: the reference for decoding, slow for training.
#pragma once

#include "common.hpp"

namespace mixlab::retnet {

struct Recurrent {
  static constexpr const char* name = "recurrent";
  static constexpr const char* description =
      "RetNet retention, recurrent form: S_n = gamma S_(n-1) + k_n^T v_n, one token at a time";

  static CoreResult run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_decay,
                        const Tensor& initial_state, int64_t /*chunk_size*/) {
    auto state = initial_state.defined()
                     ? initial_state
                     : torch::zeros({q.size(0), q.size(1), q.size(-1), v.size(-1)}, q.options());
    auto gamma = torch::exp(log_decay).view({-1, 1, 1});
    std::vector<Tensor> outputs;
    outputs.reserve(static_cast<size_t>(q.size(-2)));
    for (int64_t n = 0; n < q.size(-2); ++n) {
      auto k_n = k.select(-2, n).unsqueeze(-1), v_n = v.select(-2, n).unsqueeze(-2);
      state = gamma * state + k_n * v_n;
      outputs.push_back(torch::matmul(q.select(-2, n).unsqueeze(-2), state));
    }
    return {torch::cat(outputs, -2), state};
  }

  // Per token and head: the state update and the read.
  static double flops_per_token(int64_t, int64_t, int64_t dk, int64_t dv) {
    return 5.0 * static_cast<double>(dk * dv);
  }
};

}  // namespace mixlab::retnet
