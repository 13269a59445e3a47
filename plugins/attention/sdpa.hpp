// `sdpa`: LibTorch's scaled_dot_product_attention, which dispatches to its own
// fused kernels (flash / memory-efficient / math) by device and dtype. With
// `kernels = "fused"`, causal bfloat16 on the CPU takes flash_bfloat16.hpp's
// backward (bfloat16 products on AMX, float32 elsewhere).
#pragma once

#include "common.hpp"
#include "flash_bfloat16.hpp"

namespace mixlab::attention {

struct Sdpa {
  // 1.1.0: causal bfloat16 on a CPU with AMX takes flash_backward_amx.hpp's backward.
  static constexpr const char* impl = "sdpa";
  static constexpr const char* version = "1.1.0";
  static constexpr const char* description =
      "torch::scaled_dot_product_attention (LibTorch's fused kernels); a sliding window goes in as a bool mask";

  // GQA as HF's sdpa path does it: K/V heads repeated (interleaved) before the call, so
  // GQA equals MHA on repeated K/V bitwise (enable_gqa takes other kernel paths).
  static torch::Tensor attend(const Heads& h, const AttentionConfig& cfg) {
    const int64_t group = cfg.group_size();
    auto k = group > 1 ? h.k.repeat_interleave(group, 1) : h.k;
    auto v = group > 1 ? h.v.repeat_interleave(group, 1) : h.v;
    if (!cfg.window && cfg.fused_kernels && CausalFlashBfloat16::applies(h.q))
      return CausalFlashBfloat16::apply(h.q, k, v, cfg.softmax_scale);
    if (!cfg.window)
      return torch::scaled_dot_product_attention(h.q, k, v, {}, 0.0, /*is_causal=*/true, cfg.softmax_scale);
    auto pos = torch::arange(h.q.size(2), h.q.options().dtype(torch::kLong));
    return torch::scaled_dot_product_attention(h.q, k, v, visible(pos, pos, cfg.window), 0.0, false,
                                               cfg.softmax_scale);
  }
};

}  // namespace mixlab::attention
