// The router, shared by every `moe` implementation: scores, top-k selection,
// gate weights, the capacity limit, and the aux losses and statistics.
#pragma once

#include "common.hpp"

namespace mixlab::moe {

// One routing decision for N tokens, k slots each. Router math runs in at least
// float32 (float64 when x is float64, so finite differences stay meaningful).
struct Routing {
  torch::Tensor logits;   // (N, E) router x
  torch::Tensor probs;    // (N, E) the router distribution P: softmax, or sigmoid scores over their sum
  torch::Tensor experts;  // (N, k) int64, selected experts by descending score
  torch::Tensor weights;  // (N, k) gate weight of each slot; 0 where dropped by capacity
  torch::Tensor kept;     // (N, k) bool, false where dropped by capacity
};

// C = max(1, int(cf · N · k / E)) assignments per expert.
inline int64_t expert_capacity(double capacity_factor, int64_t tokens, const MoeConfig& cfg) {
  return std::max<int64_t>(1, static_cast<int64_t>(capacity_factor * static_cast<double>(tokens * cfg.top_k) /
                                                   static_cast<double>(cfg.experts)));
}

// First come, first served: a slot is kept while fewer than C earlier assignments
// went to its expert. "Earlier" is token order (token 0's slots, then token 1's, ...)
// or, with choice_order, GShard's order: every token's first choice, then every
// token's second choice, ...
inline torch::Tensor within_capacity(const torch::Tensor& experts, int64_t capacity, int64_t n_experts,
                                     bool choice_order) {
  auto queue = choice_order ? experts.t() : experts;  // rows in the order they claim capacity
  auto one_hot = torch::one_hot(queue.flatten(), n_experts);
  auto position = (one_hot.cumsum(0) * one_hot).sum(-1) - 1;  // 0-based place in the expert's queue
  auto kept = (position < capacity).view(queue.sizes());
  return choice_order ? kept.t().contiguous() : kept;
}

// x: (N, d).
inline Routing route(const torch::Tensor& x, const torch::Tensor& router_weight, const MoeConfig& cfg,
                     const Call& call) {
  auto dtype = torch::promote_types(x.scalar_type(), torch::kFloat32);
  auto xr = x.to(dtype);
  if (call.training && cfg.router_jitter > 0.0) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(call.seed);
    auto noise = torch::empty(xr.sizes(), torch::TensorOptions().dtype(dtype))
                     .uniform_(1.0 - cfg.router_jitter, 1.0 + cfg.router_jitter, gen);
    xr = xr * noise.to(xr.device());
  }
  Routing r;
  r.logits = torch::linear(xr, router_weight.to(dtype));
  auto scores = cfg.router == "softmax" ? torch::softmax(r.logits, -1) : torch::sigmoid(r.logits);
  r.probs = cfg.router == "softmax" ? scores : scores / scores.sum(-1, true);
  auto [top_scores, top_experts] = torch::topk(scores, cfg.top_k, -1);
  r.experts = top_experts;
  r.weights = cfg.renormalize ? top_scores / top_scores.sum(-1, true) : top_scores;
  if (cfg.capacity_factor) {
    r.kept = within_capacity(r.experts, expert_capacity(*cfg.capacity_factor, x.size(0), cfg), cfg.experts,
                             cfg.choice_order);
    r.weights = r.weights * r.kept;
  } else {
    r.kept = torch::ones_like(r.experts, torch::kBool);
  }
  return r;
}

// f_i: the fraction of the N·k assignments (before capacity) routed to expert i.
inline torch::Tensor expert_share(const Routing& r, int64_t n_experts) {
  auto counts = torch::bincount(r.experts.flatten(), {}, n_experts);
  return counts.to(r.probs.scalar_type()) / static_cast<double>(r.experts.numel());
}

// The side outputs, in the order sides() declares them.
inline std::vector<SideSpec> side_specs(const MoeConfig& cfg) {
  return {SideSpec::aux_loss("balance_loss", cfg.balance_loss_coef,
                             "E · sum_i f_i P_i (f_i: share of assignments, P_i: mean router probability); "
                             "1 at balance"),
          SideSpec::aux_loss("z_loss", cfg.z_loss_coef, "mean over tokens of logsumexp(router logits)^2"),
          SideSpec::statistic("expert_share", {cfg.experts}, "fraction of the top-k assignments per expert"),
          SideSpec::statistic("router_entropy", {}, "mean entropy (nats) of the router distribution"),
          SideSpec::statistic("dropped_share", {}, "fraction of assignments dropped by the capacity limit"),
          SideSpec::token_statistic("expert_weights", {cfg.experts},
                                    "per token: the gate weight of each expert (0 where not selected or dropped)")};
}

// batch_shape: (B, T) of the layer input, the leading dims of the token statistic.
inline std::vector<torch::Tensor> side_outputs(const Routing& r, const MoeConfig& cfg, torch::IntArrayRef batch_shape) {
  // f carries no gradient (it counts argmax picks); the router learns through P.
  auto share = expert_share(r, cfg.experts);
  auto balance = static_cast<double>(cfg.experts) * (share * r.probs.mean(0)).sum();
  auto z = torch::logsumexp(r.logits, -1).square().mean();
  torch::NoGradGuard no_grad;
  auto entropy = -torch::special::xlogy(r.probs, r.probs).sum(-1).mean();
  auto dropped = 1.0 - r.kept.to(torch::kFloat32).mean();
  auto per_token = torch::zeros({r.experts.size(0), cfg.experts}, r.weights.options().dtype(torch::kFloat32))
                       .scatter_(1, r.experts, r.weights.to(torch::kFloat32))
                       .view({batch_shape[0], batch_shape[1], cfg.experts});
  return {balance, z, share.to(torch::kFloat32), entropy.to(torch::kFloat32), dropped, per_token};
}

}  // namespace mixlab::moe
