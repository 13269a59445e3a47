// `parallel`: the retention of a whole block at once with the decay mask
// materialised, o = (Q Kᵀ ∘ D) V + (Q ⊙ ξ) S0 (torchscale's parallel form, plus
// the incoming state). It is also the block that `chunkwise` runs inside
// each chunk. Memory O(T²) per head: best for short sequences.
#pragma once

#include "common.hpp"

namespace mixlab::retnet {

// Leading dims of q, k, v (before the head dim) are free, so a batch of chunks
// (B, N, H, L, d) runs as one call. Positions are 0..L-1 within the block.
struct Block {
  // (Q Kᵀ ∘ D) V: the contributions of the block's own tokens.
  static Tensor intra(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_decay) {
    auto mask = decay_mask(log_decay, q.size(-2));
    return torch::matmul(torch::matmul(q, k.transpose(-1, -2)) * mask, v);
  }

  // (Q ⊙ ξ) S, ξ_j = γ^(j+1): what the state before the block adds to each output.
  static Tensor from_state(const Tensor& q, const Tensor& state, const Tensor& log_decay) {
    auto position = torch::arange(q.size(-2), log_decay.options());
    return torch::matmul(q * decay_powers(log_decay, position + 1), state);
  }

  // Kᵀ (V ⊙ ζ), ζ_j = γ^(L-1-j): the block's tokens decayed to its end.
  static Tensor state_increment(const Tensor& k, const Tensor& v, const Tensor& log_decay) {
    auto position = torch::arange(k.size(-2), log_decay.options());
    return torch::matmul(k.transpose(-1, -2), v * decay_powers(log_decay, k.size(-2) - 1 - position));
  }

  // γ^L as (H, 1, 1): how much of the incoming state survives a block of length L.
  static Tensor carry(const Tensor& log_decay, int64_t len) {
    return torch::exp(log_decay * static_cast<double>(len)).view({-1, 1, 1});
  }
};

struct Parallel {
  static constexpr const char* name = "parallel";
  static constexpr const char* description =
      "RetNet retention, parallel form: the T x T decay mask materialised (O(T^2) memory)";

  static CoreResult run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_decay,
                        const Tensor& initial_state, int64_t /*chunk_size*/) {
    auto o = Block::intra(q, k, v, log_decay);
    auto state = Block::state_increment(k, v, log_decay);
    if (initial_state.defined()) {
      o = o + Block::from_state(q, initial_state, log_decay);
      state = state + Block::carry(log_decay, q.size(-2)) * initial_state;
    }
    return {o, state};
  }

  // Per token and head: the full T x T scores and their product with V.
  static double flops_per_token(int64_t seq_len, int64_t /*chunk_size*/, int64_t dk, int64_t dv) {
    return 2.0 * static_cast<double>(seq_len) * static_cast<double>(dk + dv);
  }
};

}  // namespace mixlab::retnet
