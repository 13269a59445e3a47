// `chunked`: the SSD core as the chunked algorithm of Mamba-2 (Dao & Gu 2024,
// Listing 1 / mamba_ssm's ssd_minimal): within a chunk of Q tokens the quadratic
// (attention-like) form, between chunks the state passed along one chunk at a
// time. O(T Q) work, linear in T for a fixed chunk size.
#pragma once

#include "block.hpp"
#include "segsum_kernel.hpp"

#include <limits>

namespace mixlab::mamba {

// The stable segment sum: out[..., i, j] = a_{j+1} + ... + a_i for j <= i and -inf
// above the diagonal, so exp(out) holds exact zeros there. Built as a masked
// cumulative sum, not as cumsum_i - cumsum_j, which cancels catastrophically.
inline torch::Tensor segsum(const torch::Tensor& a) {
  const int64_t Q = a.size(-1);
  auto ones = torch::ones({Q, Q}, a.options().dtype(torch::kBool));
  auto strictly_below = torch::tril(ones, -1), on_or_below = torch::tril(ones);
  auto sizes = a.sizes().vec();
  sizes.push_back(Q);
  auto rows = a.unsqueeze(-1).expand(sizes);  // rows[..., i, j] = a_i
  return rows.masked_fill(strictly_below.logical_not(), 0.0)
      .cumsum(-2)
      .masked_fill(on_or_below.logical_not(), -std::numeric_limits<double>::infinity());
}

// The recurrence of ssd_recurrent in chunks of min(chunk_size, T). A length that
// is not a multiple is padded with dt = 0: decay 1 (a = 0) and no input, so the
// state passes the padding unchanged and S_T is the final state. fused_segsum: segsum_fused
// (segsum_kernel.hpp) in place of the composed segsum, the same values.
inline SsdResult ssd_chunked(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& initial_state,
                             int64_t chunk_size, bool fused_segsum = true) {
  const int64_t b = x.size(0), T = x.size(1), h = x.size(2), p = x.size(3), g = B.size(2), r = h / g;
  const int64_t Q = std::min(chunk_size, T), n_chunks = (T + Q - 1) / Q, pad = n_chunks * Q - T;
  // (b, T, ...) -> (b, n_chunks, Q, ...), zero-padded at the end.
  auto chunks = [&](const torch::Tensor& t) {
    auto padded = t;
    if (pad > 0) {
      auto sizes = t.sizes().vec();
      sizes[1] = pad;
      padded = torch::cat({t, torch::zeros(sizes, t.options())}, 1);
    }
    return padded.unflatten(1, {n_chunks, Q});
  };
  // Heads are split as (g, r): head g_i r + r_i reads group g_i.
  auto x_dt = chunks(x * dt.unsqueeze(-1)).unflatten(3, {g, r});  // (b, c, s, g, r, p)
  auto B_c = chunks(B), C_c = chunks(C);                          // (b, c, l, g, n)
  auto a = chunks(dt * A).permute({0, 1, 3, 2});                  // (b, c, h, l)
  auto a_cum = a.cumsum(-1);
  // (b, c, g, r, l, s): exp(a_{s+1..l}), 0 for s > l
  auto decay = torch::exp(fused_segsum ? segsum_fused(a) : segsum(a)).unflatten(2, {g, r});

  // 1. Within each chunk: y_l = sum_{s <= l} (C_l . B_s) exp(a_{s+1..l}) dt_s x_s.
  auto scores = torch::einsum("bclgn,bcsgn->bcgls", {C_c, B_c}).unsqueeze(3) * decay;
  auto y_diag = torch::einsum("bcgrls,bcsgrp->bclgrp", {scores, x_dt});

  // 2. What each chunk adds to the state at its end.
  auto decay_to_end = decay.select(-2, Q - 1);  // (b, c, g, r, s)
  auto chunk_states = torch::einsum("bcsgn,bcgrs,bcsgrp->bcgrpn", {B_c, decay_to_end, x_dt});

  // 3. Between chunks: S_{c+1} = exp(a summed over chunk c) S_c + chunk_states_c.
  auto chunk_decay = torch::exp(a_cum.select(-1, Q - 1)).unflatten(2, {g, r}).unsqueeze(-1).unsqueeze(-1).unbind(1);
  auto chunk_added = chunk_states.unbind(1);  // unbind, not a select per chunk: one stack in backward
  auto state = initial_or_zeros(initial_state, x, B).unflatten(1, {g, r});  // (b, g, r, p, n)
  std::vector<torch::Tensor> entering;
  entering.reserve(n_chunks);
  for (int64_t c = 0; c < n_chunks; ++c) {
    entering.push_back(state);
    state = state * chunk_decay[c] + chunk_added[c];
  }

  // 4. The state entering each chunk, read out at position l with its decay from the chunk start.
  auto decay_from_start = torch::exp(a_cum).unflatten(2, {g, r});  // (b, c, g, r, l)
  auto y_off = torch::einsum("bclgn,bcgrpn,bcgrl->bclgrp", {C_c, torch::stack(entering, 1), decay_from_start});

  auto y = (y_diag + y_off).reshape({b, n_chunks * Q, h, p}).narrow(1, 0, T);
  return {y, state.flatten(1, 2)};
}

class MambaChunked final : public Mamba2Block {
 public:
  static ImplInfo info() {
    ImplInfo i = impl_info("chunked", "Mamba-2 block, SSD core as the chunked algorithm (quadratic within chunks)");
    i.caps |= MIXLAB_CAP_PREFERRED;  // what an experiment gets without impl = "...": the fast form
    return i;
  }
  using Mamba2Block::Mamba2Block;

  SsdResult ssd(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A, const torch::Tensor& B,
                const torch::Tensor& C, const torch::Tensor& initial_state) const override {
    return ssd_chunked(x, dt, A, B, C, initial_state, config().chunk_size, config().fused_kernels);
  }

  // Per token with Q = min(chunk_size, T): scores C.B over Q positions (per group), the
  // quadratic read of Q inputs (per head), its chunk-end state and the state read-out.
  double ssd_flops_per_token(int64_t seq_len) const override {
    const auto& m = config();
    double Q = static_cast<double>(std::min(m.chunk_size, std::max<int64_t>(seq_len, 1)));
    double hpn = static_cast<double>(m.n_heads()) * m.headdim * m.d_state;
    return 2.0 * Q * m.ngroups * m.d_state + Q * m.n_heads() + 2.0 * Q * m.n_heads() * m.headdim + 4.0 * hpn +
           2.0 * hpn / Q;
  }
};

}  // namespace mixlab::mamba
