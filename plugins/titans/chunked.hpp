// `chunked`: the chunk-parallel form (§3.2). Inside a piece of n tokens that
// lies in one chunk, every gradient is taken at the same weights P = M_c, so all
// n gradients are one batched computation (inner_gradient on the whole piece),
// and the two linear recurrences unroll into cumulative products. With
// W, S the weights and momentum before the piece and, for t, s, i in 1..n,
//
//   b_t = Π_{j≤t} (1 - α_j),   e_t = Π_{j≤t} η_j
//   Dβ[t, s] = b_t / b_s,   Dη[s, i] = e_s / e_i        (s ≤ t, i ≤ s; 0 above the diagonal)
//   G = Dβ Dη,   a = Dβ e
//   S_t = e_t S - Σ_{i≤t} Dη[t, i] θ_i u_i
//   M_t = b_t W + a_t S - Σ_{i≤t} G[t, i] θ_i u_i
//
// (substitute S_s into M_t = Σ_{s≤t} Dβ[t, s] S_s + b_t W; θ_i is the clamped
// step θ'_i of common.hpp, a function of u_i alone). The ratios are
// formed in log space (exp of differences of cumulative log-sigmoids), so no
// small product is ever divided by. Since each u_i is rank one per layer,
// u_i = o_i ⊗ z_i, a layer of M_t applied to a token's input r_t is
//
//   M_t r_t = b_t W r_t + a_t S r_t - Σ_{i≤t} G[t, i] θ_i (z_i · r_t) o_i
//
// an attention-like sum over the piece: no per-token weights are formed. The
// memory's output for q_t runs through the layers this way (r = q_t for the
// first, silu of the first's output for the second); the state after the piece
// is row n of the same formulas, a sum of n outer products per layer.
#pragma once

#include "state.hpp"

#include <limits>

namespace mixlab::titans {

struct Chunked {
  static constexpr const char* impl = "chunked";
  static constexpr const char* description =
      "Titans neural memory chunk-parallel: one batched gradient per chunk, recurrences as cumulative products";

  // exp(L_t - L_s) for s <= t, 0 above the diagonal: (B, H, n, n) from L (B, H, n).
  static Tensor decay_matrix(const Tensor& L) {
    const int64_t n = L.size(-1);
    auto future = torch::ones({n, n}, L.options().dtype(torch::kBool)).triu(1);
    return (L.unsqueeze(-1) - L.unsqueeze(-2)).masked_fill(future, -std::numeric_limits<double>::infinity()).exp();
  }

  // The same contract as Naive::scan.
  static Tensor scan(const TitansConfig& cfg, MemoryState& s, const Tokens& t) {
    const int64_t n = t.size();
    auto log_b = t.log_keep.cumsum(-1), log_e = t.log_eta.cumsum(-1);  // (B, H, n)
    auto d_beta = decay_matrix(log_b), d_eta = decay_matrix(log_e);
    auto G = torch::matmul(d_beta, d_eta);                                // (B, H, n, n)
    auto b = log_b.exp().unsqueeze(-1);                                   // (B, H, n, 1)
    auto a = torch::matmul(d_beta, log_e.exp().unsqueeze(-1));            // (B, H, n, 1)
    auto grads = inner_gradient(s.anchor, t.k, t.v);
    auto theta = clamped_theta(cfg, grads, t.theta);                      // θ'_i
    auto step = G * theta.unsqueeze(-2);                                  // G[t, i] θ'_i

    // Layer l of M_t applied to r (B, H, n, in), row t with M_t.
    auto apply = [&](size_t l, const Tensor& r) {
      auto from_start = b * torch::matmul(r, s.weights[l].transpose(-2, -1)) +
                        a * torch::matmul(r, s.momentum[l].transpose(-2, -1));
      return from_start - torch::matmul(step * torch::matmul(r, grads[l].in.transpose(-2, -1)), grads[l].out);
    };
    auto o = apply(0, t.q);
    if (grads.size() == 2) o = apply(1, torch::silu(o));

    // Row n: Σ_i c_i o_i ⊗ z_i = (o ⊙ c)ᵀ z.
    auto last = [&](const Tensor& m) { return m.select(-2, n - 1); };  // (B, H, n) or (B, H, 1)
    auto sum_outer = [](const RankOne& g, const Tensor& c) {
      return torch::matmul((g.out * c.unsqueeze(-1)).transpose(-2, -1), g.in);
    };
    auto scalar = [](const Tensor& v) { return v.reshape({v.size(0), v.size(1), 1, 1}); };
    for (size_t l = 0; l < grads.size(); ++l) {
      auto w = scalar(last(b)) * s.weights[l] + scalar(last(a)) * s.momentum[l] - sum_outer(grads[l], last(step));
      s.momentum[l] = scalar(log_e.select(-1, n - 1).exp()) * s.momentum[l] -
                      sum_outer(grads[l], last(d_eta) * theta);
      s.weights[l] = w;
    }
    return o;
  }

  // Per token and head: the batched gradient at the anchor (~4 |M|), retrieval
  // from W and S (4 |M|), the state after the chunk (4 |M|, amortised), plus
  // the in-chunk sums: per layer scores and weighted sum over ~C/2 tokens,
  // 2 C (in + out).
  static double flops_per_token_and_head(const TitansConfig& cfg) {
    double in_chunk = 0;
    for (auto [out, in] : cfg.memory_shapes()) in_chunk += 2.0 * static_cast<double>(cfg.chunk_size * (in + out));
    return 12.0 * static_cast<double>(cfg.memory_size()) + in_chunk;
  }
};

}  // namespace mixlab::titans
