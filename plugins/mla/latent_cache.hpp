// The decode state of both implementations: per token only the latent c_KV
// (d_c) and the rope key k_R after RoPE (d_r), shared by all heads: (d_c + d_r)
// values per token and layer, against H (d_n + d_r + d_v) for multi-head
// attention with the same heads. `naive` up-projects per-head K and V from it
// at every step; `absorbed` attends over it directly.
#pragma once

#include "common.hpp"

namespace mixlab::mla {

struct LatentCache : State {
  Latents kv;  // c_kv (B, tokens, d_c), k_rope (B, tokens, d_r)
  int64_t length = 0;

  LatentCache(const MlaConfig& cfg, int64_t batch, const torch::TensorOptions& options)
      : kv{torch::zeros({batch, 0, cfg.latent_dim}, options), torch::zeros({batch, 0, cfg.rope_head_dim}, options)} {}

  // What new tokens attend over: the cache followed by themselves.
  Latents with(const Latents& fresh) const {
    return {torch::cat({kv.c_kv, fresh.c_kv}, 1), torch::cat({kv.k_rope, fresh.k_rope}, 1)};
  }

  void append(const Latents& fresh) {
    kv = with(fresh);
    length += fresh.c_kv.size(1);
  }
};

}  // namespace mixlab::mla
