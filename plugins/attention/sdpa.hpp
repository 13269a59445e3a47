// `sdpa`: LibTorch's scaled_dot_product_attention, which dispatches to its own
// fused kernels (flash / memory-efficient / math) by device and dtype.
#pragma once

#include "common.hpp"

namespace mixlab::attention {

struct Sdpa {
  static constexpr const char* impl = "sdpa";
  static constexpr const char* description =
      "torch::scaled_dot_product_attention (LibTorch's fused kernels); a sliding window goes in as a bool mask";

  static torch::Tensor attend(const Heads& h, const AttentionConfig& cfg) {
    const bool gqa = cfg.n_kv_heads != cfg.n_heads;
    if (!cfg.window)
      return torch::scaled_dot_product_attention(h.q, h.k, h.v, {}, 0.0, /*is_causal=*/true, cfg.softmax_scale, gqa);
    auto pos = torch::arange(h.q.size(2), h.q.options().dtype(torch::kLong));
    return torch::scaled_dot_product_attention(h.q, h.k, h.v, visible(pos, pos, cfg.window), 0.0, false,
                                               cfg.softmax_scale, gqa);
  }
};

}  // namespace mixlab::attention
