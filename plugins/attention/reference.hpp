// `reference`: the naive form. Scores for every (query, key) pair are
// materialised, masked and softmaxed, as in Hugging Face's eager attention:
// memory O(T^2) per head.
#pragma once

#include "common.hpp"

namespace mixlab::attention {

// q (B, Hq, Tq, D) at positions q_pos (Tq,), k and v (B, Hkv, Tk, D) at
// positions k_pos (Tk,), int64. Returns (B, Hq, Tq, D) in q's dtype. Also the
// decode path of every implementation (a KV cache is not in position order).
inline torch::Tensor attend_naive(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& q_pos, const torch::Tensor& k_pos,
                                  std::optional<int64_t> window, double scale) {
  auto dtype = compute_dtype(q.scalar_type());
  const int64_t group = q.size(1) / k.size(1);
  // GQA as repeat_kv: query head j reads kv head j / group.
  auto kr = k.to(dtype).repeat_interleave(group, 1);
  auto vr = v.to(dtype).repeat_interleave(group, 1);
  auto scores = torch::matmul(q.to(dtype), kr.transpose(-2, -1)) * scale;
  scores = scores.masked_fill(visible(q_pos, k_pos, window).logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), vr).to(q.scalar_type());
}

struct Reference {
  static constexpr const char* impl = "reference";
  static constexpr const char* version = "1.0.0";
  static constexpr const char* description =
      "naive attention: T x T scores materialised (HF eager); GQA, RoPE, sliding window";

  static torch::Tensor attend(const Heads& h, const AttentionConfig& cfg) {
    auto pos = torch::arange(h.q.size(2), h.q.options().dtype(torch::kLong));
    return attend_naive(h.q, h.k, h.v, pos, pos, cfg.window, cfg.softmax_scale);
  }
};

}  // namespace mixlab::attention
