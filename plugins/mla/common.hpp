// Multi-head latent attention (MLA, DeepSeek-V2, Liu et al. 2024, §2.1): the
// config, the ONE parameter layout both implementations share (so they can be
// A/B-swapped on the same weights), and the projections every form starts
// from. With h (B, T, d_model), H heads, latent d_c, rope dim d_r, per-head
// dims d_n (no-position query/key part) and d_v (value):
//
//   c_KV = RMSNorm(W_DKV h)                (B, T, d_c)   the cached latent
//   k_R  = RoPE(W_KR h)                    (B, T, d_r)   the cached rope key, shared by all heads
//   c_Q  = RMSNorm(W_DQ h)  (or h itself when the query is not compressed)
//   q_h  = [W_UQ_h c_Q ; RoPE(W_QR_h c_Q)] (d_n + d_r)   wq_up / wq rows hold both parts per head
//   k_h  = [W_UK_h c_KV ; k_R]             (d_n + d_r)
//   v_h  = W_UV_h c_KV                     (d_v)
//   o_h[t] = sum_{s <= t} softmax_s(scale q_h[t] . k_h[s]) v_h[s]
//   y    = W_O concat_h(o_h)
//
// The RMSNorms after the latents are the paper's "additional RMS Norm layers
// after the compressed latent vectors" (§3.1.2), as in the released models.
#pragma once

#include "../attention/common.hpp"  // RoPE, the causal visibility rule, the compute dtype

#include <cmath>
#include <optional>

namespace mixlab::mla {

using attention::compute_dtype;
using attention::Rope;
using attention::visible;

struct MlaConfig {
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t latent_dim = 0;                 // d_c, kv_lora_rank
  std::optional<int64_t> q_latent_dim;    // d_cq, q_lora_rank; absent: full-rank query
  int64_t nope_head_dim = 0;              // d_n, qk_nope_head_dim
  int64_t rope_head_dim = 0;              // d_r, qk_rope_head_dim
  int64_t v_head_dim = 0;                 // d_v
  Rope rope;                              // over the d_r rope channels only
  double norm_eps = 1e-6;
  double softmax_scale = 0.0;

  int64_t qk_head_dim() const { return nope_head_dim + rope_head_dim; }

  static MlaConfig parse(const CreateArgs& args) {
    const auto& c = args.config;
    MlaConfig cfg;
    cfg.d_model = args.d_model;
    cfg.n_heads = c.get_int("n_heads", std::max<int64_t>(1, args.d_model / 64));
    cfg.latent_dim = c.require<int64_t>("latent_dim");
    auto low_rank = [&](const std::string& key, int64_t v) {
      if (v < 1 || v >= args.d_model)
        throw config_error(key, "must be in [1, d_model) = [1, " + std::to_string(args.d_model) +
                                    ") (a low-rank compression of the hidden state), got " + std::to_string(v));
    };
    low_rank("latent_dim", cfg.latent_dim);
    cfg.q_latent_dim = c.get_optional<int64_t>("q_latent_dim");
    if (cfg.q_latent_dim) low_rank("q_latent_dim", *cfg.q_latent_dim);
    if (!c.has("nope_head_dim") && args.d_model % cfg.n_heads != 0)
      throw config_error("nope_head_dim", "is required when n_heads = " + std::to_string(cfg.n_heads) +
                                              " does not divide d_model = " + std::to_string(args.d_model));
    cfg.nope_head_dim = c.get_int("nope_head_dim", args.d_model / cfg.n_heads);
    // DeepSeek-V2: d_r = d_h / 2 (64 of 128), rounded down to an even count.
    cfg.rope_head_dim = c.get_int("rope_head_dim", std::max<int64_t>(2, cfg.nope_head_dim / 2 / 2 * 2), 2);
    if (cfg.rope_head_dim % 2 != 0)
      throw config_error("rope_head_dim", "must be even (RoPE rotates channel pairs), got " +
                                              std::to_string(cfg.rope_head_dim));
    cfg.v_head_dim = c.get_int("v_head_dim", cfg.nope_head_dim);
    cfg.rope.rotary_dim = cfg.rope_head_dim;
    cfg.rope.theta = c.get<double>("rope_theta", 10000.0);
    if (!(cfg.rope.theta > 1.0 && std::isfinite(cfg.rope.theta)))
      throw config_error("rope_theta", "must be a finite number > 1, got " + std::to_string(cfg.rope.theta));
    cfg.norm_eps = c.get<double>("norm_eps", 1e-6);
    if (!(cfg.norm_eps > 0.0 && cfg.norm_eps < 1.0))
      throw config_error("norm_eps", "must be in (0, 1), got " + std::to_string(cfg.norm_eps));
    cfg.softmax_scale = c.get<double>("softmax_scale", 1.0 / std::sqrt(static_cast<double>(cfg.qk_head_dim())));
    if (!(cfg.softmax_scale > 0.0 && std::isfinite(cfg.softmax_scale)))
      throw config_error("softmax_scale", "must be a finite number > 0, got " + std::to_string(cfg.softmax_scale));
    return cfg;
  }

  // The parameter layout: torch.nn.Linear weights (out, in). Head h owns rows
  // [h (d_n + d_r), (h + 1)(d_n + d_r)) of the query projection (its first d_n
  // are the no-position part, the last d_r the rope part), rows [h d_n, (h+1) d_n)
  // of wk_up, [h d_v, (h+1) d_v) of wv_up and those columns of wo.
  std::vector<ParamSpec> params() const {
    const int64_t q_width = n_heads * qk_head_dim();
    std::vector<ParamSpec> p;
    if (q_latent_dim) {
      p.push_back(ParamSpec::normal("wq_down", {*q_latent_dim, d_model}, "query compression W_DQ (q_latent_dim, d_model)"));
      p.push_back(ParamSpec::ones("q_norm", {*q_latent_dim}, "RMSNorm weight of the query latent c_Q"));
      p.push_back(ParamSpec::normal("wq_up", {q_width, *q_latent_dim},
                                    "query up-projection [W_UQ; W_QR] per head (n_heads * (nope + rope), q_latent_dim)"));
    } else {
      p.push_back(ParamSpec::normal("wq", {q_width, d_model}, "query projection [W_UQ; W_QR] per head (n_heads * (nope + rope), d_model)"));
    }
    p.push_back(ParamSpec::normal("wkv_down", {latent_dim, d_model}, "joint KV compression W_DKV (latent_dim, d_model)"));
    p.push_back(ParamSpec::ones("kv_norm", {latent_dim}, "RMSNorm weight of the KV latent c_KV"));
    p.push_back(ParamSpec::normal("wk_rope", {rope_head_dim, d_model}, "shared rope key W_KR (rope_head_dim, d_model)"));
    p.push_back(ParamSpec::normal("wk_up", {n_heads * nope_head_dim, latent_dim}, "key up-projection W_UK (n_heads * nope, latent_dim)"));
    p.push_back(ParamSpec::normal("wv_up", {n_heads * v_head_dim, latent_dim}, "value up-projection W_UV (n_heads * v, latent_dim)"));
    p.push_back(ParamSpec::normal("wo", {d_model, n_heads * v_head_dim}, "output projection W_O (d_model, n_heads * v)"));
    return p;
  }
};

// What the attention cores read. Queries: q_nope (B, H, Tq, d_n) and q_rope
// (B, H, Tq, d_r, after RoPE). Keys: the latent c_kv (B, Tk, d_c) and the rope
// key k_rope (B, Tk, d_r, after RoPE): exactly what decode caches.
struct Queries {
  torch::Tensor nope, rope;
};
struct Latents {
  torch::Tensor c_kv, k_rope;
};

// x (B, T, d_model) at float64 `positions` (T,) into the queries and the latent keys.
inline std::pair<Queries, Latents> project(const MlaConfig& cfg, const torch::Tensor& x, const Params& p,
                                           const torch::Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q_in = x;
  auto weight_q = cfg.q_latent_dim ? p["wq_up"] : p["wq"];
  if (cfg.q_latent_dim)
    q_in = torch::rms_norm(torch::linear(x, p["wq_down"]), {*cfg.q_latent_dim}, p["q_norm"], cfg.norm_eps);
  auto q = torch::linear(q_in, weight_q).view({B, T, cfg.n_heads, cfg.qk_head_dim()}).transpose(1, 2);
  auto [cos, sin] = cfg.rope.tables(positions, x.scalar_type());
  Queries queries{q.narrow(-1, 0, cfg.nope_head_dim),
                  cfg.rope.apply(q.narrow(-1, cfg.nope_head_dim, cfg.rope_head_dim), cos, sin)};
  Latents keys{torch::rms_norm(torch::linear(x, p["wkv_down"]), {cfg.latent_dim}, p["kv_norm"], cfg.norm_eps),
               cfg.rope.apply(torch::linear(x, p["wk_rope"]), cos, sin)};
  return {queries, keys};
}

// o (B, H, T, d_v) back to (B, T, d_model).
inline torch::Tensor merge(const MlaConfig& cfg, const torch::Tensor& o, const Params& p) {
  auto flat = o.transpose(1, 2).reshape({o.size(0), o.size(2), cfg.n_heads * cfg.v_head_dim});
  return torch::linear(flat, p["wo"]);
}

// Scores (B, H, Tq, Tk) to attention weights: causal by position, softmax in
// the compute dtype.
inline torch::Tensor causal_softmax(const torch::Tensor& scores, const torch::Tensor& q_pos, const torch::Tensor& k_pos) {
  auto hidden = visible(q_pos, k_pos, std::nullopt).logical_not();
  return torch::softmax(scores.masked_fill(hidden, -std::numeric_limits<double>::infinity()), -1);
}

}  // namespace mixlab::mla
