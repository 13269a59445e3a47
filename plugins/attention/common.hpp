// Attention: the config, the ONE parameter layout every implementation shares
// (so they can be A/B-swapped on the same weights), the projections in and
// out of heads, and the causal / sliding-window visibility rule.
#pragma once

#include "rope_kernel.hpp"

#include <cmath>
#include <optional>

namespace mixlab::attention {

struct AttentionConfig {
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  bool qkv_bias = false;
  bool out_bias = false;
  Rope rope;
  std::optional<int64_t> window;  // W keys including the current token; absent: global
  double softmax_scale = 0.0;
  int64_t flash_tile = 128;  // only `flash` reads it; every implementation accepts it
  bool fused_kernels = true;  // one q/k/v product, RoPE by rope_kernel.hpp; false: the composed reference (A/B)

  int64_t group_size() const { return n_heads / n_kv_heads; }

  static AttentionConfig parse(const CreateArgs& args) {
    const auto& c = args.config;
    AttentionConfig cfg;
    cfg.d_model = args.d_model;
    // GPT-2 convention: heads of 64 channels, one head below d_model 128.
    cfg.n_heads = c.get_int("n_heads", std::max<int64_t>(1, args.d_model / 64));
    cfg.n_kv_heads = c.get_int("n_kv_heads", cfg.n_heads);
    if (cfg.n_heads % cfg.n_kv_heads != 0)
      throw config_error("n_kv_heads", "must divide n_heads = " + std::to_string(cfg.n_heads) + ", got " +
                                           std::to_string(cfg.n_kv_heads));
    if (!c.has("head_dim") && args.d_model % cfg.n_heads != 0)
      throw config_error("head_dim", "is required when n_heads = " + std::to_string(cfg.n_heads) +
                                         " does not divide d_model = " + std::to_string(args.d_model));
    cfg.head_dim = c.get_int("head_dim", args.d_model / cfg.n_heads);
    cfg.qkv_bias = c.get<bool>("qkv_bias", false);
    cfg.out_bias = c.get<bool>("out_bias", false);
    cfg.rope = parse_rope(c, cfg.head_dim);
    if (auto w = c.get_optional<int64_t>("window")) {
      if (*w < 1) throw config_error("window", "must be >= 1 (absent means global), got " + std::to_string(*w));
      cfg.window = *w;
    }
    cfg.softmax_scale = c.get<double>("softmax_scale", 1.0 / std::sqrt(static_cast<double>(cfg.head_dim)));
    if (!(cfg.softmax_scale > 0.0 && std::isfinite(cfg.softmax_scale)))
      throw config_error("softmax_scale", "must be a finite number > 0, got " + std::to_string(cfg.softmax_scale));
    cfg.flash_tile = c.get_int("flash_tile", 128);
    cfg.fused_kernels = c.get_choice("kernels", "fused", {"fused", "reference"}) == "fused";
    return cfg;
  }

  // The parameter layout: torch.nn.Linear weights (out, in); head h owns rows
  // [h * head_dim, (h + 1) * head_dim) of wq, wk, wv and columns of wo.
  std::vector<ParamSpec> params() const {
    const int64_t q_width = n_heads * head_dim, kv_width = n_kv_heads * head_dim;
    std::vector<ParamSpec> p{
        ParamSpec::normal("wq", {q_width, d_model}, "query projection (n_heads * head_dim, d_model)"),
        ParamSpec::normal("wk", {kv_width, d_model}, "key projection (n_kv_heads * head_dim, d_model)"),
        ParamSpec::normal("wv", {kv_width, d_model}, "value projection (n_kv_heads * head_dim, d_model)"),
        ParamSpec::normal("wo", {d_model, q_width}, "output projection (d_model, n_heads * head_dim)")};
    if (qkv_bias) {
      p.push_back(ParamSpec::zeros("bq", {q_width}, "bias of wq"));
      p.push_back(ParamSpec::zeros("bk", {kv_width}, "bias of wk"));
      p.push_back(ParamSpec::zeros("bv", {kv_width}, "bias of wv"));
    }
    if (out_bias) p.push_back(ParamSpec::zeros("bo", {d_model}, "bias of wo"));
    return p;
  }

 private:
  static Rope parse_rope(const Config& c, int64_t head_dim) {
    Rope rope;
    rope.theta = c.get<double>("rope_theta", 10000.0);
    if (!(rope.theta > 1.0 && std::isfinite(rope.theta)))
      throw config_error("rope_theta", "must be a finite number > 1, got " + std::to_string(rope.theta));
    double fraction = c.get<double>("partial_rotary_factor", 1.0);
    if (!(fraction >= 0.0 && fraction <= 1.0))
      throw config_error("partial_rotary_factor", "must be in [0, 1], got " + std::to_string(fraction));
    rope.rotary_dim = static_cast<int64_t>(std::floor(static_cast<double>(head_dim) * fraction));
    if (rope.rotary_dim % 2 != 0)
      throw config_error("partial_rotary_factor", "must give an even number of rotary channels, got " +
                                                      std::to_string(rope.rotary_dim) + " of head_dim " +
                                                      std::to_string(head_dim));
    if (auto scaling = c.get_optional<nlohmann::json>("rope_scaling")) rope.scaling_factor = parse_scaling(*scaling);
    return rope;
  }

  // {"type": "linear", "factor": f}: positions are divided by f.
  static double parse_scaling(const nlohmann::json& s) {
    const std::string expected = "expected {\"type\": \"linear\", \"factor\": f > 0}, got " + s.dump();
    if (!s.is_object() || s.size() != 2 || !s.contains("type") || !s.contains("factor"))
      throw config_error("rope_scaling", expected);
    if (s["type"] != "linear") throw config_error("rope_scaling", "only type \"linear\" is supported; " + expected);
    if (!s["factor"].is_number()) throw config_error("rope_scaling", expected);
    double factor = s["factor"].get<double>();
    if (!(factor > 0.0 && std::isfinite(factor))) throw config_error("rope_scaling", expected);
    return factor;
  }
};

// Queries, keys and values in heads: q (B, n_heads, T, head_dim), k and v
// (B, n_kv_heads, T, head_dim); RoPE already applied to q and k.
struct Heads {
  torch::Tensor q, k, v;
};

inline torch::Tensor optional_param(const Params& p, bool present, const char* name) {
  return present ? p[name] : torch::Tensor();
}

// x (B, T, d_model) at float64 `positions` (T,) into heads. With fused kernels q, k and v come
// from one product with [wq; wk; wv] (one GEMM three times as wide in place of three, forward and
// for each gradient, which the CPU's BLAS runs faster); the reference runs three.
inline Heads project(const AttentionConfig& cfg, const torch::Tensor& x, const Params& p,
                     const torch::Tensor& positions) {
  const int64_t q_width = cfg.n_heads * cfg.head_dim, kv_width = cfg.n_kv_heads * cfg.head_dim;
  std::vector<torch::Tensor> qkv;
  if (cfg.fused_kernels) {
    auto bias = cfg.qkv_bias ? torch::cat({p["bq"], p["bk"], p["bv"]}) : torch::Tensor();
    qkv = torch::linear(x, torch::cat({p["wq"], p["wk"], p["wv"]}), bias)
              .split_with_sizes({q_width, kv_width, kv_width}, -1);
  } else {
    for (auto [w, b] : {std::pair{"wq", "bq"}, std::pair{"wk", "bk"}, std::pair{"wv", "bv"}})
      qkv.push_back(torch::linear(x, p[w], optional_param(p, cfg.qkv_bias, b)));
  }
  auto heads = [&](const torch::Tensor& y, int64_t n) {
    return y.view({x.size(0), x.size(1), n, cfg.head_dim}).transpose(1, 2);
  };
  Heads h{heads(qkv[0], cfg.n_heads), heads(qkv[1], cfg.n_kv_heads), heads(qkv[2], cfg.n_kv_heads)};
  if (cfg.rope.enabled()) {
    auto [cos, sin] = cfg.rope.tables(positions, x.scalar_type());
    auto rotate = [&](const torch::Tensor& t) {
      return cfg.fused_kernels ? rope_fused(cfg.rope, t, cos, sin) : cfg.rope.apply(t, cos, sin);
    };
    h.q = rotate(h.q);
    h.k = rotate(h.k);
  }
  return h;
}

// o (B, n_heads, T, head_dim) back to (B, T, d_model).
inline torch::Tensor merge(const AttentionConfig& cfg, const torch::Tensor& o, const Params& p) {
  auto flat = o.transpose(1, 2).reshape({o.size(0), o.size(2), cfg.n_heads * cfg.head_dim});
  return torch::linear(flat, p["wo"], optional_param(p, cfg.out_bias, "bo"));
}

// Key at position kp is visible to the query at qp when kp <= qp and, with a
// window W, kp > qp - W (W keys including the query's own). (Tq, Tk) bool.
inline torch::Tensor visible(const torch::Tensor& q_pos, const torch::Tensor& k_pos, std::optional<int64_t> window) {
  auto qp = q_pos.unsqueeze(-1), kp = k_pos.unsqueeze(0);
  auto mask = kp <= qp;
  if (window) mask = mask & (kp > qp - *window);
  return mask;
}

// Scores and softmax run in float32 at least (float64 for float64 inputs).
inline torch::ScalarType compute_dtype(torch::ScalarType t) {
  return t == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

}  // namespace mixlab::attention
