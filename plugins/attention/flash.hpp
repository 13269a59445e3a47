// `flash`: FlashAttention-2 written with torch ops. Queries and keys are cut
// into tiles; each query tile runs an online softmax over the key tiles it can
// see, so no T x T tensor exists and memory is linear in T. Tiles entirely
// outside the causal / sliding window are skipped. The backward recomputes
// each tile's probabilities from the saved log-sum-exp (FlashAttention-2,
// Algorithm 2), so training memory is linear in T too.
//
// GQA without repeating the whole K/V: queries are viewed as (B, Hkv, group,
// T, D) and each K/V tile is copied over its group, so every query head runs
// the same (tile x D) GEMMs on the same layout as in MHA: GQA equals MHA on
// repeated K/V bitwise, not just to rounding.
#pragma once

#include "common.hpp"

namespace mixlab::attention {

namespace flash_detail {

using torch::Tensor;

// Which key tiles each query tile sees. Query and key tiles share one size,
// so tile i's diagonal is key tile i and tiles after it are never visible.
struct Tiling {
  int64_t length, tile;
  std::optional<int64_t> window;
  Tensor positions;  // (length,) int64

  int64_t count() const { return (length + tile - 1) / tile; }
  int64_t begin(int64_t i) const { return i * tile; }
  int64_t size(int64_t i) const { return std::min(tile, length - begin(i)); }
  int64_t first_visible(int64_t i) const {
    return window ? std::max<int64_t>(0, begin(i) - *window + 1) / tile : 0;
  }
  // Scores of query tile i against key tile j, with hidden pairs at -inf.
  // Tiles wholly inside the window need no mask.
  Tensor scores(const Tensor& qi, const Tensor& kj, int64_t i, int64_t j, double scale) const {
    auto s = torch::matmul(qi, kj.transpose(-2, -1)) * scale;
    const int64_t q_first = begin(i), q_last = begin(i) + size(i) - 1;
    const int64_t k_first = begin(j), k_last = begin(j) + size(j) - 1;
    bool all_visible = k_last <= q_first && (!window || k_first > q_last - *window);
    if (all_visible) return s;
    auto mask = visible(positions.narrow(0, q_first, size(i)), positions.narrow(0, k_first, size(j)), window);
    return s.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  }
  Tensor rows(const Tensor& t, int64_t i, int64_t dim) const { return t.narrow(dim, begin(i), size(i)); }
};

// A K or V tile (B, Hkv, 1, t, D) copied for each query head of its group (B, Hkv, G, t, D):
// a tile, not the sequence, so the copy is small, and the GEMMs see MHA's layout.
inline Tensor per_query_head(const Tensor& kv, const Tensor& q) {
  return kv.expand({q.size(0), q.size(1), q.size(2), kv.size(3), kv.size(4)}).contiguous();
}

// Log-sum-exp of a row that saw no key yet is -inf; exponents use 0 instead
// so that exp(-inf - (-inf)) never appears.
inline Tensor finite_or_zero(const Tensor& m) {
  return m.masked_fill(m == -std::numeric_limits<double>::infinity(), 0.0);
}

// q (B, Hkv, G, T, D), k and v (B, Hkv, 1, T, D). Returns (out, lse (B, Hkv, G, T)).
inline std::pair<Tensor, Tensor> forward_tiles(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                                               const Tiling& tiling) {
  auto out = torch::empty_like(q);
  auto lse = torch::empty(q.sizes().slice(0, 4), q.options());
  for (int64_t i = 0; i < tiling.count(); ++i) {
    auto qi = tiling.rows(q, i, 3);
    auto row_shape = qi.sizes().vec();
    row_shape.back() = 1;
    auto m = torch::full(row_shape, -std::numeric_limits<double>::infinity(), q.options());
    auto l = torch::zeros(row_shape, q.options());
    auto acc = torch::zeros_like(qi);
    for (int64_t j = tiling.first_visible(i); j <= i; ++j) {
      auto s = tiling.scores(qi, per_query_head(tiling.rows(k, j, 3), qi), i, j, scale);
      auto m_new = torch::maximum(m, s.amax(-1, true));
      auto shift = finite_or_zero(m_new);
      auto p = torch::exp(s - shift);
      auto rescale = torch::exp(m - shift);
      l = l * rescale + p.sum(-1, true);
      acc = acc * rescale + torch::matmul(p, per_query_head(tiling.rows(v, j, 3), qi));
      m = m_new;
    }
    tiling.rows(out, i, 3).copy_(acc / l);
    tiling.rows(lse, i, 3).copy_((m + torch::log(l)).squeeze(-1));
  }
  return {out, lse};
}

// Gradients (dq, dk, dv) in the shapes of q, k, v.
inline std::tuple<Tensor, Tensor, Tensor> backward_tiles(const Tensor& q, const Tensor& k, const Tensor& v,
                                                         const Tensor& out, const Tensor& lse, const Tensor& grad_out,
                                                         double scale, const Tiling& tiling) {
  auto delta = (grad_out * out).sum(-1, true);  // rowsum(dO * O)
  auto dq = torch::empty_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
  auto lse_rows = lse.unsqueeze(-1);
  for (int64_t i = 0; i < tiling.count(); ++i) {
    auto qi = tiling.rows(q, i, 3), dOi = tiling.rows(grad_out, i, 3);
    auto lse_i = tiling.rows(lse_rows, i, 3), delta_i = tiling.rows(delta, i, 3);
    auto dqi = torch::zeros_like(qi);
    for (int64_t j = tiling.first_visible(i); j <= i; ++j) {
      auto kj = per_query_head(tiling.rows(k, j, 3), qi), vj = per_query_head(tiling.rows(v, j, 3), qi);
      auto p = torch::exp(tiling.scores(qi, kj, i, j, scale) - lse_i);
      tiling.rows(dv, j, 3).add_(torch::matmul(p.transpose(-2, -1), dOi).sum(2, true));
      auto ds = p * (torch::matmul(dOi, vj.transpose(-2, -1)) - delta_i) * scale;
      dqi.add_(torch::matmul(ds, kj));
      tiling.rows(dk, j, 3).add_(torch::matmul(ds.transpose(-2, -1), qi).sum(2, true));
    }
    tiling.rows(dq, i, 3).copy_(dqi);
  }
  return {dq, dk, dv};
}

// The autograd node: inputs q (B, Hq, T, D), k and v (B, Hkv, T, D) in any
// floating dtype; work and saved tensors in compute_dtype. window 0 = global.
class FlashAttention : public torch::autograd::Function<FlashAttention> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        double scale, int64_t tile, int64_t window) {
    auto dtype = compute_dtype(q.scalar_type());
    auto grouped = group_queries(q.to(dtype), k.size(1));
    auto k5 = k.to(dtype).unsqueeze(2), v5 = v.to(dtype).unsqueeze(2);
    auto [out, lse] = forward_tiles(grouped, k5, v5, scale, tiling(q, tile, window));
    ctx->save_for_backward({grouped, k5, v5, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["tile"] = tile;
    ctx->saved_data["window"] = window;
    ctx->saved_data["q_dtype"] = q.scalar_type();
    ctx->saved_data["kv_dtype"] = k.scalar_type();
    return out.reshape(q.sizes()).to(q.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto &q5 = saved[0], &k5 = saved[1], &v5 = saved[2], &out = saved[3], &lse = saved[4];
    auto grad_out = grad_outputs[0].to(q5.scalar_type()).reshape(q5.sizes());
    auto q_shape = std::vector<int64_t>{q5.size(0), q5.size(1) * q5.size(2), q5.size(3), q5.size(4)};
    auto t = tiling(grad_outputs[0], ctx->saved_data["tile"].toInt(), ctx->saved_data["window"].toInt());
    auto [dq, dk, dv] = backward_tiles(q5, k5, v5, out, lse, grad_out, ctx->saved_data["scale"].toDouble(), t);
    auto q_dtype = ctx->saved_data["q_dtype"].toScalarType(), kv_dtype = ctx->saved_data["kv_dtype"].toScalarType();
    return {dq.reshape(q_shape).to(q_dtype), dk.squeeze(2).to(kv_dtype), dv.squeeze(2).to(kv_dtype), Tensor(),
            Tensor(), Tensor()};
  }

 private:
  // (B, Hq, T, D) -> (B, Hkv, group, T, D): query head j = kv head j / group.
  static Tensor group_queries(const Tensor& q, int64_t kv_heads) {
    return q.reshape({q.size(0), kv_heads, q.size(1) / kv_heads, q.size(2), q.size(3)});
  }
  static Tiling tiling(const Tensor& like, int64_t tile, int64_t window) {
    const int64_t length = like.size(2);
    return {length, tile, window > 0 ? std::optional<int64_t>(window) : std::nullopt,
            torch::arange(length, like.options().dtype(torch::kLong))};
  }
};

}  // namespace flash_detail

struct Flash {
  static constexpr const char* impl = "flash";
  static constexpr const char* version = "1.0.0";
  static constexpr const char* description =
      "tiled online-softmax attention (FlashAttention-2 forward and recomputing backward in torch ops): "
      "memory linear in T, tiles outside the window skipped";

  static torch::Tensor attend(const Heads& h, const AttentionConfig& cfg) {
    return flash_detail::FlashAttention::apply(h.q, h.k, h.v, cfg.softmax_scale, cfg.flash_tile,
                                               cfg.window.value_or(0));
  }
};

}  // namespace mixlab::attention
