// `chunkwise`: the parallel block inside each chunk of C tokens, the
// recurrence across chunks (R_i = γ^C R_(i-1) + K_iᵀ (V_i ⊙ ζ)). All full
// chunks run as one batched block; only the hand-over of the (d_k, d_v) state
// from chunk to chunk is sequential; a last partial chunk runs as its own
// block. O(T C) time and memory.
#pragma once

#include "parallel.hpp"

namespace mixlab::retnet {

struct Chunkwise {
  static constexpr const char* name = "chunkwise";
  static constexpr const char* description =
      "RetNet retention, chunkwise form: parallel inside chunks of chunk_size, recurrent across them";

  static CoreResult run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_decay,
                        const Tensor& initial_state, int64_t chunk_size) {
    const int64_t len = q.size(-2), full = len / chunk_size * chunk_size;
    auto state = initial_state.defined()
                     ? initial_state
                     : torch::zeros({q.size(0), q.size(1), q.size(-1), v.size(-1)}, q.options());
    std::vector<Tensor> outputs;
    for (auto [begin, end, size] : {std::tuple{int64_t{0}, full, chunk_size}, std::tuple{full, len, len - full}}) {
      if (end == begin) continue;
      auto part = [&](const Tensor& t) { return t.narrow(-2, begin, end - begin); };
      auto result = chunks(part(q), part(k), part(v), log_decay, state, size);
      outputs.push_back(result.o);
      state = result.state;
    }
    return {torch::cat(outputs, -2), state};
  }

  // Per token and head: a C x C block, the state increment and the read of the incoming state.
  static double flops_per_token(int64_t seq_len, int64_t chunk_size, int64_t dk, int64_t dv) {
    auto c = static_cast<double>(std::min(seq_len, chunk_size));
    return 2.0 * c * static_cast<double>(dk + dv) + 4.0 * static_cast<double>(dk * dv);
  }

 private:
  // (B, H, N*C, d) as N chunks of length C, starting from `state` (B, H, d_k, d_v).
  static CoreResult chunks(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_decay,
                           Tensor state, int64_t size) {
    const int64_t n_chunks = q.size(-2) / size;
    // (B, H, N*C, d) -> (B, N, H, C, d): chunks in front of the heads.
    auto split = [&](const Tensor& t) {
      return t.reshape({t.size(0), t.size(1), n_chunks, size, t.size(-1)}).transpose(1, 2);
    };
    auto qc = split(q), kc = split(k), vc = split(v);
    auto increments = Block::state_increment(kc, vc, log_decay);
    auto carry = Block::carry(log_decay, size);
    std::vector<Tensor> before;  // the state entering each chunk
    for (int64_t i = 0; i < n_chunks; ++i) {
      before.push_back(state);
      state = carry * state + increments.select(1, i);
    }
    auto o = Block::intra(qc, kc, vc, log_decay) + Block::from_state(qc, torch::stack(before, 1), log_decay);
    return {o.transpose(1, 2).reshape({q.size(0), q.size(1), n_chunks * size, v.size(-1)}), state};
  }
};

}  // namespace mixlab::retnet
