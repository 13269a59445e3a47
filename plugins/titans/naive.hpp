// `naive`: the recurrence of common.hpp token by token in a plain loop. Each
// token's gradient u_t is materialised as a full (out, in) matrix per layer,
// the momentum and the weights are updated, and the token retrieves with its
// own weights M_t. The ground truth `chunked` is held to.
#pragma once

#include "state.hpp"

namespace mixlab::titans {

struct Naive {
  static constexpr const char* impl = "naive";
  static constexpr const char* description =
      "Titans neural memory token by token: per-token weights, gradients at the chunk-start weights";

  // Tokens of one piece that lies inside one chunk (gradients at s.anchor, each
  // token's step clamped by cfg.inner_max_grad_norm);
  // advances s.weights and s.momentum, returns M_t(q_t) (B, H, n, d_h).
  static Tensor scan(const TitansConfig& cfg, MemoryState& s, const Tokens& t) {
    std::vector<Tensor> outs;
    for (int64_t i = 0; i < t.size(); ++i) {
      auto one = t.slice(i, 1);
      auto grads = inner_gradient(s.anchor, one.k, one.v);
      auto theta = clamped_theta(cfg, grads, one.theta);
      auto scalar = [](const Tensor& v) { return v.unsqueeze(-1); };  // (B, H, 1) -> (B, H, 1, 1)
      for (size_t l = 0; l < grads.size(); ++l) {
        auto u = torch::matmul(grads[l].out.transpose(-2, -1), grads[l].in);  // (B, H, out, in)
        s.momentum[l] = scalar(one.log_eta.exp()) * s.momentum[l] - scalar(theta) * u;
        s.weights[l] = scalar(one.log_keep.exp()) * s.weights[l] + s.momentum[l];
      }
      outs.push_back(retrieve(s.weights, one.q));
    }
    return torch::cat(outs, 2);
  }

  // Per token and head, in units of |M| (the memory's values): the gradient at
  // the anchor (forward and backward, ~4), the outer products (2), momentum and
  // weight updates (4), retrieval (2).
  static double flops_per_token_and_head(const TitansConfig& cfg) {
    return 12.0 * static_cast<double>(cfg.memory_size());
  }
};

}  // namespace mixlab::titans
