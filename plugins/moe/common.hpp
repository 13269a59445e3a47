// `moe`: the config, the ONE parameter layout and the module both implementations
// share (dense and sparse differ only in how the routed experts are computed, so
// they can be A/B-swapped on the same weights).
#pragma once

#include "ffn_math.hpp"

#include <optional>

namespace mixlab::moe {

struct MoeConfig {
  int64_t d_model;
  int64_t experts;        // E routed experts
  int64_t top_k;          // k experts per token
  int64_t expert_hidden;  // hidden width of each routed and shared expert
  std::string activation;
  std::string router;  // "softmax" | "sigmoid"
  bool renormalize;    // top-k weights divided by their sum
  double balance_loss_coef;
  double z_loss_coef;
  std::optional<double> capacity_factor;  // absent: no token dropped
  bool choice_order;                      // capacity claimed by all first choices, then all second, ... (GShard)
  int64_t shared_experts;                 // always on, added without a gate
  double router_jitter;                   // training only: router input times U(1 - eps, 1 + eps)
  ffn::Kernels kernels;                   // how the gated unit runs (ffn_math.hpp)

  static MoeConfig parse(const CreateArgs& args) {
    const Config& c = args.config;
    MoeConfig m;
    m.d_model = args.d_model;
    m.experts = c.get_int("experts", 4);
    m.top_k = c.get_int("top_k", 2);
    if (m.top_k > m.experts)
      throw config_error("top_k", "must be <= experts (" + std::to_string(m.experts) + "), got " +
                                      std::to_string(m.top_k));
    m.activation = c.get_choice("activation", "swiglu", ffn::activations());
    // Default: the routed experts' active parameters equal the default mlp's.
    const int64_t mlp_hidden = ffn::default_hidden(args.d_model, m.activation);
    m.expert_hidden = c.get_int("expert_hidden", (mlp_hidden + m.top_k - 1) / m.top_k);
    m.router = c.get_choice("router", "softmax", {"softmax", "sigmoid"});
    m.renormalize = c.get<bool>("renormalize", true);
    m.balance_loss_coef = non_negative(c, "balance_loss_coef", 0.01);
    m.z_loss_coef = non_negative(c, "z_loss_coef", 0.001);
    m.capacity_factor = c.get_optional<double>("capacity_factor");
    if (m.capacity_factor && !(*m.capacity_factor > 0.0))
      throw config_error("capacity_factor", "must be > 0 (leave it out for no capacity limit), got " +
                                                std::to_string(*m.capacity_factor));
    m.choice_order = c.get_choice("capacity_order", "token", {"token", "choice"}) == "choice";
    if (c.json().contains("capacity_order") && !m.capacity_factor)
      throw config_error("capacity_order", "only orders the capacity limit; set capacity_factor as well");
    m.shared_experts = c.get_int("shared_experts", 0, 0);
    m.router_jitter = non_negative(c, "router_jitter", 0.0);
    if (m.router_jitter >= 1.0)
      throw config_error("router_jitter", "must be in [0, 1), got " + std::to_string(m.router_jitter));
    m.kernels = ffn::parse_kernels(c);
    return m;
  }

  bool gated() const { return ffn::is_gated(activation); }
  // Parameters of one expert (w_in, optional w_gate, w_out).
  int64_t params_per_expert() const { return (gated() ? 3 : 2) * expert_hidden * d_model; }

 private:
  static double non_negative(const Config& c, const std::string& key, double fallback) {
    double v = c.get<double>(key, fallback);
    if (!(v >= 0.0)) throw config_error(key, "must be >= 0, got " + std::to_string(v));
    return v;
  }
};

// A stack of experts: (n, hidden, d), optional (n, hidden, d), (n, d, hidden).
struct ExpertStack {
  torch::Tensor w_in, w_gate, w_out;

  static ExpertStack from(const Params& p, const MoeConfig& cfg, const std::string& prefix) {
    return {p[prefix + "w_in"], cfg.gated() ? p[prefix + "w_gate"] : torch::Tensor(), p[prefix + "w_out"]};
  }
};

inline void add_expert_specs(std::vector<ParamSpec>& specs, const MoeConfig& cfg, int64_t n,
                             const std::string& prefix, const std::string& what) {
  const int64_t h = cfg.expert_hidden, d = cfg.d_model;
  specs.push_back(ParamSpec::normal(prefix + "w_in", {n, h, d}, what + " input projections (n, hidden, d_model)"));
  if (cfg.gated())
    specs.push_back(ParamSpec::normal(prefix + "w_gate", {n, h, d},
                                      what + " gate projections (n, hidden, d_model), multiply act(w_in x)"));
  specs.push_back(ParamSpec::normal(prefix + "w_out", {n, d, h}, what + " output projections (n, d_model, hidden)"));
}

inline std::vector<ParamSpec> param_specs(const MoeConfig& cfg) {
  std::vector<ParamSpec> specs{
      ParamSpec::normal("router", {cfg.experts, cfg.d_model}, "router weight (experts, d_model): logits = router x")};
  add_expert_specs(specs, cfg, cfg.experts, "", "routed experts'");
  if (cfg.shared_experts > 0) add_expert_specs(specs, cfg, cfg.shared_experts, "shared_", "shared experts'");
  return specs;
}

// The shared experts: the sum of n FFNs equals one FFN whose hidden units are
// theirs side by side (DeepSeek-V3 builds them that way), so one wide FFN runs.
inline torch::Tensor shared_experts(const torch::Tensor& x, const ExpertStack& s, const MoeConfig& cfg) {
  const int64_t wide = cfg.shared_experts * cfg.expert_hidden;
  auto w_out = s.w_out.permute({1, 0, 2}).reshape({cfg.d_model, wide});
  torch::Tensor none;
  return ffn::apply(x, cfg.activation, cfg.kernels, s.w_in.reshape({wide, cfg.d_model}), none,
                    s.w_gate.defined() ? s.w_gate.reshape({wide, cfg.d_model}) : none, none, w_out, none);
}

}  // namespace mixlab::moe
