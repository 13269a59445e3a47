// `absorbed`: the weight-absorbed form DeepSeek-V2 serves with (§2.1.2: "we can
// absorb W_UK into W_UQ, and W_UV into W_O"). Per head,
//   q_h^C . (W_UK_h c_KV[s]) = (W_UK_h^T q_h^C) . c_KV[s]
//   sum_s p_s W_UV_h c_KV[s] = W_UV_h (sum_s p_s c_KV[s])
// so each query is moved into the latent space once (B, H, Tq, d_c), attention
// runs over the cached latent directly (one shared d_c + d_r key per token, as
// MQA), and W_UV is applied to the H attention outputs, never to the keys. No
// per-head key or value is ever formed: decode reads only the cache.
#pragma once

#include "common.hpp"

namespace mixlab::mla {

struct Absorbed {
  static constexpr const char* impl = "absorbed";
  static constexpr const char* description =
      "MLA (DeepSeek-V2) weight-absorbed: W_UK folded into the query, W_UV into the output, attention over the latent";

  // The same contract as Naive::attend.
  static torch::Tensor attend(const MlaConfig& cfg, const Params& p, const Queries& q, const Latents& kv,
                              const torch::Tensor& q_pos, const torch::Tensor& k_pos) {
    auto dtype = compute_dtype(q.nope.scalar_type());
    const int64_t H = cfg.n_heads, d_c = cfg.latent_dim;
    auto w_uk = p["wk_up"].to(dtype).reshape({H, cfg.nope_head_dim, d_c});  // W_UK_h (d_n, d_c)
    auto w_uv = p["wv_up"].to(dtype).reshape({H, cfg.v_head_dim, d_c});     // W_UV_h (d_v, d_c)
    auto q_latent = torch::matmul(q.nope.to(dtype), w_uk);                 // (B, H, Tq, d_c)
    auto c_kv = kv.c_kv.to(dtype).unsqueeze(1);                            // (B, 1, Tk, d_c)
    auto k_rope = kv.k_rope.to(dtype).unsqueeze(1);                        // (B, 1, Tk, d_r)
    auto scores = (torch::matmul(q_latent, c_kv.transpose(-2, -1)) +
                   torch::matmul(q.rope.to(dtype), k_rope.transpose(-2, -1))) *
                  cfg.softmax_scale;
    auto o_latent = torch::matmul(causal_softmax(scores, q_pos, k_pos), c_kv);  // (B, H, Tq, d_c)
    return torch::matmul(o_latent, w_uv.transpose(-2, -1)).to(q.nope.scalar_type());
  }

  // Per visible key and head: q.k over d_c + d_r channels and the weighted sum
  // over d_c (the latent is the value).
  static double flops_per_key_and_head(const MlaConfig& cfg) {
    return 2.0 * static_cast<double>(2 * cfg.latent_dim + cfg.rope_head_dim);
  }
};

}  // namespace mixlab::mla
