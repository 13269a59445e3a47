// `naive`: MLA as the paper writes it. Per-head keys and values are
// materialised from the latent (k_h = [W_UK_h c_KV ; k_R], v_h = W_UV_h c_KV),
// then ordinary softmax attention over them with the (Tq, Tk) scores
// materialised. The ground truth the absorbed form is held to.
#pragma once

#include "common.hpp"

namespace mixlab::mla {

struct Naive {
  static constexpr const char* impl = "naive";
  static constexpr const char* description =
      "MLA (DeepSeek-V2) with per-head K and V up-projected from the latent, T x T scores materialised";

  // Queries at q_pos (Tq,) over latent keys at k_pos (Tk,), int64 positions.
  // Returns o (B, H, Tq, d_v) in the queries' dtype.
  static torch::Tensor attend(const MlaConfig& cfg, const Params& p, const Queries& q, const Latents& kv,
                              const torch::Tensor& q_pos, const torch::Tensor& k_pos) {
    auto dtype = compute_dtype(q.nope.scalar_type());
    const int64_t B = kv.c_kv.size(0), Tk = kv.c_kv.size(1), H = cfg.n_heads;
    auto c_kv = kv.c_kv.to(dtype);
    auto per_head = [&](const char* w, int64_t dim) {
      return torch::linear(c_kv, p[w].to(dtype)).view({B, Tk, H, dim}).transpose(1, 2);
    };
    auto k_rope = kv.k_rope.to(dtype).unsqueeze(1).expand({B, H, Tk, cfg.rope_head_dim});
    auto k = torch::cat({per_head("wk_up", cfg.nope_head_dim), k_rope}, -1);  // (B, H, Tk, d_n + d_r)
    auto v = per_head("wv_up", cfg.v_head_dim);                             // (B, H, Tk, d_v)
    auto queries = torch::cat({q.nope, q.rope}, -1).to(dtype);
    auto scores = torch::matmul(queries, k.transpose(-2, -1)) * cfg.softmax_scale;
    return torch::matmul(causal_softmax(scores, q_pos, k_pos), v).to(q.nope.scalar_type());
  }

  // What one query attends with per visible key and head: q.k over d_n + d_r
  // channels and the weighted sum over d_v, multiply-add = 2.
  static double flops_per_key_and_head(const MlaConfig& cfg) {
    return 2.0 * static_cast<double>(cfg.qk_head_dim() + cfg.v_head_dim);
  }
};

}  // namespace mixlab::mla
