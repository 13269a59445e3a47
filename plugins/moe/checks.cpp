// The `moe` invariants (mixers-research.md §6), each held against an
// independent naive form in float64 and run for every implementation. `grouped`
// runs float64 through its loop (LibTorch's grouped matmul takes float32 and
// below), so its grouped matmul is held to float64 `dense` in float32 and bfloat16.
#include "checks.hpp"

#include "dense.hpp"
#include "mlp.hpp"
#include "sparse.hpp"

#include <mixlab/testing.hpp>

namespace mixlab::moe {
namespace {

using torch::Tensor;
using testing::all_of;
using testing::expect_close;
using testing::scaled_max_error;

constexpr double kFloat64Tol = 1e-10;
constexpr int64_t kDModel = 32;

template <class Impl>
Impl make(const std::string& config, int64_t d_model = kDModel) {
  return Impl(testing::args(d_model, 64, config));
}

template <class Impl>
std::string impl_name() {
  return Impl::info().impl;
}

Tensor random_tokens(int64_t batch, int64_t len, int64_t d_model, torch::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::empty({batch, len, d_model}, torch::kFloat64).normal_(0.0, 1.0, gen).to(dtype);
}

// The same values with one tensor replaced.
Params replaced(const Params& p, const std::string& name, const Tensor& value) {
  std::vector<Tensor> tensors = p.tensors();
  for (size_t i = 0; i < tensors.size(); ++i)
    if (p.names()[i] == name) tensors[i] = value;
  return Params(p.names(), tensors);
}

// Expert i of a stack as a plain FFN, the naive form the layer is compared with.
Tensor naive_expert(const Tensor& x, const Params& p, const MoeConfig& cfg, int64_t i) {
  Tensor none;
  return ffn::apply(x, cfg.activation, ffn::Kernels::reference, p["w_in"][i], none,
                    cfg.gated() ? p["w_gate"][i] : none, none, p["w_out"][i], none);
}

// y, the aux losses, and the gradients of <w, y> + sum c_i aux_i with respect to x and every parameter.
// w is drawn in float64 and rounded through bfloat16, so that it is the same in every dtype.
std::vector<Tensor> outputs_and_gradients(const MoeLayer& layer, const Params& params, const Tensor& x,
                                          uint64_t seed) {
  auto p = testing::with_grad(params);
  auto xg = x.detach().clone().requires_grad_(true);
  auto out = layer.forward(xg, p, Call{});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto w = torch::empty(out.y.sizes(), torch::kFloat64).normal_(0.0, 1.0, gen).to(torch::kBFloat16);
  auto objective = (out.y * w.to(out.y.scalar_type())).sum().to(torch::kFloat64) + 0.7 * out.side[0] - 0.3 * out.side[1];
  std::vector<Tensor> inputs{xg};
  for (const auto& t : p.tensors()) inputs.push_back(t);
  auto grads = torch::autograd::grad({objective}, inputs);
  std::vector<Tensor> result{out.y.detach(), out.side[0].detach(), out.side[1].detach()};
  for (const auto& g : grads) result.push_back(g);
  return result;
}

// The values of p rounded to `dtype`, held in float64.
Params rounded(const Params& p, torch::ScalarType dtype) {
  std::vector<Tensor> tensors;
  for (const auto& t : p.tensors()) tensors.push_back(t.to(dtype).to(torch::kFloat64));
  return Params(p.names(), tensors);
}

CheckResult weights_sum_to_one(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const std::string router : {"softmax", "sigmoid"}) {
    auto layer = make<MoeDense>(R"({"experts": 8, "top_k": 3, "router": ")" + router + R"("})");
    auto p = testing::make_params(layer, torch::kFloat32, seed);
    auto x = random_tokens(1, 64, kDModel, torch::kFloat32, seed + 1).squeeze(0);
    auto r = route(x, p["router"], layer.config(), Call{});
    double error = (r.weights.sum(-1) - 1.0).abs().max().item<double>();
    results.push_back(expect_close(router + " router, float32: |sum of top-3 weights - 1|", error, 1e-6));
  }
  return all_of(results);
}

// The per-token statistic expert_weights (B, T, E) against a naive router in
// float64: softmax over the logits, top-k, renormalised; k non-zeros per token;
// its non-zero counts reproduce the expert_share statistic.
template <class Impl>
CheckResult token_weights_match_routing(uint64_t seed) {
  auto layer = make<Impl>(R"({"experts": 6, "top_k": 2})");
  auto p = testing::make_params(layer, torch::kFloat64, seed);
  auto x = random_tokens(2, 16, kDModel, torch::kFloat64, seed + 1);
  auto out = layer.forward(x, p, Call{});
  const Tensor& weights = out.side.back();  // (B, T, E), declared last
  auto expected = torch::zeros({2, 16, 6}, torch::kFloat64);
  Tensor probs = torch::softmax(torch::matmul(x, p["router"].t()), -1);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 16; ++t) {
      Tensor row = probs[b][t];
      Tensor order = row.argsort(0, /*descending=*/true);
      int64_t first = order[0].item<int64_t>(), second = order[1].item<int64_t>();
      double sum = row[first].item<double>() + row[second].item<double>();
      expected[b][t][first] = row[first].item<double>() / sum;
      expected[b][t][second] = row[second].item<double>() / sum;
    }
  std::string name = Impl::info().impl;
  auto counts = weights.gt(0).sum(-1).to(torch::kFloat64);
  // IntArrayRef spelled out: a bare {0, 1} is ambiguous (IntArrayRef or DimnameList) in LibTorch 2.11.
  auto share = weights.gt(0).to(torch::kFloat64).sum(torch::IntArrayRef{0, 1}) / 64.0;
  return all_of({expect_close(name + ": expert_weights vs naive float64 router (float32 statistic)",
                              (weights.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-6),
                 expect_close(name + ": experts per token - top_k (max |.|)", (counts - 2.0).abs().max().item<double>(), 0.0),
                 expect_close(name + ": non-zero share vs expert_share", scaled_max_error(share, out.side[2].to(torch::kFloat64)),
                              1e-7)});
}

// Forward and backward of a sparse implementation in every dtype it takes
// against `dense` in float64 on the same (rounded) values. Tolerances, as the
// scaled max error for y, both aux losses and every gradient: float64 1e-10;
// float32 1e-5 (outputs) and 1e-4 (gradients); bfloat16, whose 8-bit mantissa
// rounds every intermediate, 2e-2 as the relative RMS error (5e-2 for the
// gradients of the router and x, which sum the rounded expert outputs again).
template <class Impl>
CheckResult matches_float64_dense(uint64_t seed) {
  const std::vector<std::string> configs{
      "{}", R"({"capacity_factor": 0.75, "expert_hidden": 48})",
      R"({"capacity_factor": 0.75, "capacity_order": "choice", "expert_hidden": 48})",
      R"({"experts": 8, "top_k": 3, "router": "sigmoid", "renormalize": false, "shared_experts": 2,
           "activation": "gelu", "expert_hidden": 40})"};
  const char* names[] = {"y", "balance_loss", "z_loss", "grad x"};
  std::vector<CheckResult> results;
  for (const auto& config : configs)
    for (auto dtype : {torch::kFloat64, torch::kFloat32, torch::kBFloat16}) {
      auto dense = make<MoeDense>(config);
      auto sparse = make<Impl>(config);
      auto p64 = rounded(testing::make_params(dense, torch::kFloat64, seed), dtype);
      auto x64 = random_tokens(2, 16, kDModel, dtype, seed + 1).to(torch::kFloat64);
      std::vector<Tensor> tensors;
      for (const auto& t : p64.tensors()) tensors.push_back(t.to(dtype));
      auto a = outputs_and_gradients(sparse, Params(p64.names(), tensors), x64.to(dtype), seed + 2);
      auto b = outputs_and_gradients(dense, p64, x64, seed + 2);
      std::string label = impl_name<Impl>() + " " + c10::toString(dtype) + " vs dense float64 " + config + " ";
      for (size_t i = 0; i < a.size(); ++i) {
        std::string what = label + (i < 4 ? names[i] : "grad " + p64.names()[i - 4]);
        if (dtype == torch::kBFloat16) {
          bool sums_again = i == 3 || (i >= 4 && p64.names()[i - 4] == "router");
          double error = testing::nan_as_inf(testing::relative_rms(a[i], b[i]));
          double tol = sums_again ? 5e-2 : 2e-2;
          results.push_back({error <= tol, error, tol, testing::describe_error(what, "relative RMS error", error, tol)});
        } else {
          double tol = dtype == torch::kFloat64 ? kFloat64Tol : (i < 3 ? 1e-5 : 1e-4);
          results.push_back(expect_close(what, scaled_max_error(a[i], b[i]), tol));
        }
      }
    }
  return all_of(results);
}

template <class Impl>
CheckResult tokens_permute(uint64_t seed) {
  auto layer = make<Impl>("{}");
  auto p = testing::make_params(layer, torch::kFloat64, seed);
  auto x = random_tokens(1, 24, kDModel, torch::kFloat64, seed + 1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 2);
  auto perm = torch::randperm(24, gen, torch::kLong);
  auto y = layer.forward(x, p, Call{}).y;
  auto y_perm = layer.forward(x.index_select(1, perm), p, Call{}).y;
  return expect_close(impl_name<Impl>() + ": y(permuted x) vs permuted y(x)",
                      scaled_max_error(y_perm, y.index_select(1, perm)), kFloat64Tol);
}

template <class Impl>
CheckResult all_experts_are_softmax_mixture(uint64_t seed) {
  auto layer = make<Impl>(R"({"experts": 4, "top_k": 4})");
  const auto& cfg = layer.config();
  auto p = testing::make_params(layer, torch::kFloat64, seed);
  auto x = random_tokens(1, 20, kDModel, torch::kFloat64, seed + 1).squeeze(0);
  auto probs = torch::softmax(torch::matmul(x, p["router"].t()), -1);
  auto mixture = torch::zeros_like(x);
  for (int64_t i = 0; i < cfg.experts; ++i) mixture += probs.slice(1, i, i + 1) * naive_expert(x, p, cfg, i);
  return expect_close(impl_name<Impl>() + ": k = E vs softmax-weighted sum of all experts",
                      scaled_max_error(layer.forward(x.unsqueeze(0), p, Call{}).y.squeeze(0), mixture),
                      kFloat64Tol);
}

template <class Impl>
CheckResult one_expert_is_mlp(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const std::string activation : {"swiglu", "gelu"}) {
    auto layer = make<Impl>(R"({"experts": 1, "top_k": 1, "expert_hidden": 48, "activation": ")" + activation + "\"}");
    ffn::Mlp mlp(testing::args(kDModel, 64, R"({"hidden": 48, "activation": ")" + activation + "\"}"));
    auto p = testing::make_params(layer, torch::kFloat64, seed);
    std::vector<std::string> names;
    std::vector<Tensor> tensors;
    for (const auto& spec : mlp.params()) names.push_back(spec.name), tensors.push_back(p[spec.name][0]);
    auto x = random_tokens(2, 9, kDModel, torch::kFloat64, seed + 1);
    auto y_mlp = mlp.forward(x, Params(names, tensors), Call{}).y;
    results.push_back(expect_close(impl_name<Impl>() + " " + activation + ": one expert vs mlp",
                                   scaled_max_error(layer.forward(x, p, Call{}).y, y_mlp), kFloat64Tol));
  }
  return all_of(results);
}

// The balance loss in HF Mixtral's form (E · sum over slots and experts of f[slot, i] P_i,
// which is k at balance) divided by k.
Tensor naive_balance_loss(const Tensor& logits, int64_t k) {
  const int64_t n_experts = logits.size(1);
  auto probs = torch::softmax(logits, -1);
  auto picks = torch::one_hot(std::get<1>(torch::topk(probs, k, -1)), n_experts).to(torch::kFloat64);  // (N, k, E)
  auto f = picks.mean(0);                                                                             // (k, E)
  return static_cast<double>(n_experts) * (f * probs.mean(0)).sum() / static_cast<double>(k);
}

CheckResult balance_loss_is_one_at_balance(uint64_t seed) {
  // d = 8, E = 4, router = [I | 0]: token t scores 2 on expert t mod 4 and 1 on
  // the next, so every expert gets exactly 4 of the 16 assignments.
  const int64_t d = 8, n_experts = 4, n_tokens = 8;
  auto layer = make<MoeDense>(R"({"experts": 4, "top_k": 2, "expert_hidden": 16})", d);
  auto p = testing::make_params(layer, torch::kFloat64, seed);
  auto router = torch::eye(n_experts, d, torch::kFloat64);
  p = replaced(p, "router", router);
  auto balanced = torch::zeros({1, n_tokens, d}, torch::kFloat64);
  for (int64_t t = 0; t < n_tokens; ++t) {
    balanced[0][t][t % n_experts] = 2.0;
    balanced[0][t][(t + 1) % n_experts] = 1.0;
  }
  auto skewed = balanced.select(1, 0).unsqueeze(1).expand({1, n_tokens, d}).contiguous();  // all like token 0
  double at_balance = layer.forward(balanced, p, Call{}).side[0].item<double>();
  double imbalanced = layer.forward(skewed, p, Call{}).side[0].item<double>();
  double naive = naive_balance_loss(torch::matmul(skewed.squeeze(0), router.t()), 2).item<double>();
  CheckResult grows{imbalanced > 1.5, 0.0, 0.0,
                    "all tokens on experts 0 and 1: loss " + std::to_string(imbalanced) + " (must exceed 1.5)"};
  return all_of({expect_close("balanced routing: |loss - 1|", std::abs(at_balance - 1.0), 1e-12),
                 expect_close("imbalanced routing vs HF Mixtral loss / k", std::abs(imbalanced - naive), 1e-12), grows});
}

CheckResult z_loss_at_zero_logits(uint64_t seed) {
  std::vector<CheckResult> results;
  for (int64_t n_experts : {4, 7}) {
    auto layer = make<MoeSparse>(R"({"experts": )" + std::to_string(n_experts) + R"(, "top_k": 2})");
    auto p = testing::make_params(layer, torch::kFloat64, seed);
    p = replaced(p, "router", torch::zeros_like(p["router"]));
    auto out = layer.forward(random_tokens(2, 5, kDModel, torch::kFloat64, seed + 1), p, Call{});
    double log_e = std::log(static_cast<double>(n_experts));
    std::string e = "E=" + std::to_string(n_experts) + " zero logits: ";
    results.push_back(expect_close(e + "z_loss vs (ln E)^2", std::abs(out.side[1].item<double>() - log_e * log_e), 1e-12));
    results.push_back(expect_close(e + "router_entropy vs ln E", std::abs(out.side[3].item<double>() - log_e), 1e-6));
    results.push_back(expect_close(e + "balance_loss vs 1 (uniform P)", std::abs(out.side[0].item<double>() - 1.0), 1e-12));
  }
  return all_of(results);
}

// Capacity, assignment by assignment: a slot is kept while its expert has fewer
// than C kept. Token order visits token 0's slots, then token 1's, ...; choice
// order (GShard) every token's first choice, then every token's second, ...
Tensor naive_kept(const Tensor& experts, int64_t capacity, int64_t n_experts, bool choice_order) {
  const int64_t n_tokens = experts.size(0), k = experts.size(1);
  auto kept = torch::zeros(experts.sizes(), torch::kBool);
  std::vector<int64_t> load(static_cast<size_t>(n_experts), 0);
  auto e = experts.accessor<int64_t, 2>();
  auto visit = [&](int64_t t, int64_t j) {
    if (load[static_cast<size_t>(e[t][j])]++ < capacity) kept[t][j] = true;
  };
  if (choice_order) {
    for (int64_t j = 0; j < k; ++j)
      for (int64_t t = 0; t < n_tokens; ++t) visit(t, j);
  } else {
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t j = 0; j < k; ++j) visit(t, j);
  }
  return kept;
}

// The layer token by token in float64 (x (N, d), p float64): softmax router,
// renormalised top-k, capacity C kept in the configured order, each kept slot's
// expert as a plain FFN. No shared experts.
Tensor naive_moe(const Tensor& x, const Params& p, const MoeConfig& cfg, int64_t capacity) {
  auto probs = torch::softmax(torch::matmul(x, p["router"].t()), -1);
  auto experts = std::get<1>(torch::topk(probs, cfg.top_k, -1));
  auto kept = naive_kept(experts, capacity, cfg.experts, cfg.choice_order);
  auto y = torch::zeros_like(x);
  for (int64_t t = 0; t < x.size(0); ++t) {
    double sum = 0.0;
    for (int64_t j = 0; j < cfg.top_k; ++j) sum += probs[t][experts[t][j].item<int64_t>()].item<double>();
    for (int64_t j = 0; j < cfg.top_k; ++j) {
      if (!kept[t][j].item<bool>()) continue;
      int64_t e = experts[t][j].item<int64_t>();
      y[t] += probs[t][e].item<double>() / sum * naive_expert(x.slice(0, t, t + 1), p, cfg, e).squeeze(0);
    }
  }
  return y;
}

// Capacity in token order: capped cf 0.5; loose cf 2 = E / k, which drops nothing; uncapped: no capacity.
template <class Impl>
CheckResult capacity(uint64_t seed) {
  const std::string name = impl_name<Impl>();
  auto capped = make<Impl>(R"({"capacity_factor": 0.5})"), loose = make<Impl>(R"({"capacity_factor": 2.0})");
  auto uncapped = make<Impl>("{}");
  std::vector<CheckResult> results;
  const MoeConfig& cfg = capped.config();
  Params p = testing::make_params(capped, torch::kFloat64, seed);
  auto x = random_tokens(2, 16, kDModel, torch::kFloat64, seed + 1);
  const int64_t capacity = expert_capacity(0.5, 32, cfg);  // 8

  // Random tokens: the kept slots are the first C per expert in token order, no expert over C.
  Routing r = route(x.reshape({32, kDModel}), p["router"], cfg, Call{});
  auto expected = naive_kept(r.experts, capacity, cfg.experts, false);
  results.push_back(expect_close(name + ": kept slots vs first-come-first-served loop (mismatches)",
                                 r.kept.ne(expected).sum().item<double>(), 0.0));
  Tensor load = torch::zeros({cfg.experts}, torch::kLong).index_add(0, r.experts.flatten(), r.kept.flatten().to(torch::kLong));
  results.push_back(expect_close(name + ": largest kept load above C = " + std::to_string(capacity),
                                 std::max(0.0, load.max().item<double>() - static_cast<double>(capacity)), 0.0));
  results.push_back(expect_close(name + ": cf 2 = E/k vs no capacity",
                                 scaled_max_error(loose.forward(x, p, Call{}).y, uncapped.forward(x, p, Call{}).y), 0.0));

  // 32 copies of one token: the first C keep both slots, the other 24 are dropped and give 0.
  auto same = x.select(1, 0).select(0, 0).expand({1, 32, kDModel}).contiguous();
  Output out = capped.forward(same, p, Call{});
  Tensor free = uncapped.forward(same, p, Call{}).y;
  results.push_back(expect_close(name + ": dropped tokens' output (max |y|)",
                                 out.y.slice(1, capacity).abs().max().item<double>(), 0.0));
  results.push_back(expect_close(name + ": kept tokens vs no capacity",
                                 scaled_max_error(out.y.slice(1, 0, capacity), free.slice(1, 0, capacity)),
                                 kFloat64Tol));
  results.push_back(expect_close(name + ": dropped_share vs 24/32", std::abs(out.side[4].item<double>() - 0.75), 1e-7));
  return all_of(results);
}

// Both capacity orders against the naive layer, on random tokens and on 16
// tokens preferring experts (0, 1) followed by 16 preferring (1, 0). With C = 8
// token order serves the first 8 tokens both their choices and nobody else;
// choice order serves the first 8 of each group their first choice only.
template <class Impl>
CheckResult capacity_order(uint64_t seed) {
  std::vector<CheckResult> results;
  auto x_random = random_tokens(1, 32, kDModel, torch::kFloat64, seed + 1);
  auto x_split = random_tokens(1, 32, kDModel, torch::kFloat64, seed + 2);
  // With the router replaced by [I | 0], the logits are the first E = 4 features.
  auto first_half = x_split.slice(1, 0, 16), second_half = x_split.slice(1, 16);
  x_split.slice(2, 0, 4).zero_();
  first_half.select(2, 0).fill_(2.0);
  first_half.select(2, 1).fill_(1.0);
  second_half.select(2, 0).fill_(1.0);
  second_half.select(2, 1).fill_(2.0);
  for (const std::string order : {"token", "choice"}) {
    auto layer = make<Impl>(R"({"capacity_factor": 0.5, "capacity_order": ")" + order + "\"}");
    const MoeConfig& cfg = layer.config();
    Params p = testing::make_params(layer, torch::kFloat64, seed);
    Params split_router = replaced(p, "router", torch::eye(cfg.experts, kDModel, torch::kFloat64));
    const int64_t capacity = expert_capacity(0.5, 32, cfg);  // 8
    std::string name = impl_name<Impl>() + " capacity_order " + order;
    for (const auto& [what, x, params] : {std::tuple{"random tokens", x_random, p},
                                          std::tuple{"(0,1)/(1,0) tokens", x_split, split_router}}) {
      Tensor y = layer.forward(x, params, Call{}).y.squeeze(0);
      auto naive = naive_moe(x.squeeze(0), params, cfg, capacity);
      results.push_back(expect_close(name + ", " + what + ": y vs naive float64 layer", scaled_max_error(y, naive),
                                     kFloat64Tol));
    }
    Tensor served = layer.forward(x_split, split_router, Call{}).y.squeeze(0).abs().sum(-1).gt(0);
    auto expected_served = torch::zeros({32}, torch::kBool);
    expected_served.slice(0, 0, 8).fill_(true);
    if (order == "choice") expected_served.slice(0, 16, 24).fill_(true);
    results.push_back(expect_close(name + ": tokens served on (0,1)/(1,0) tokens (mismatches)",
                                   served.ne(expected_served).sum().item<double>(), 0.0));
  }
  return all_of(results);
}

CheckResult router_learns_through_probabilities(uint64_t seed) {
  auto layer = make<MoeSparse>("{}");
  const auto& cfg = layer.config();
  auto p = testing::with_grad(testing::make_params(layer, torch::kFloat64, seed));
  auto x = random_tokens(1, 16, kDModel, torch::kFloat64, seed + 1);
  auto out = layer.forward(x, p, Call{});
  auto grad_balance = torch::autograd::grad({out.side[0]}, {p["router"]}, {}, true)[0];
  auto grad_y = torch::autograd::grad({out.y.square().sum()}, {p["router"]})[0];
  // Naive: f counted from the top-k picks and held constant, P differentiable.
  auto router = p["router"].detach().clone().requires_grad_(true);
  auto probs = torch::softmax(torch::matmul(x.squeeze(0), router.t()), -1);
  auto picks = std::get<1>(torch::topk(probs.detach(), cfg.top_k, -1)).flatten();
  auto f = torch::bincount(picks, {}, cfg.experts).to(torch::kFloat64) / static_cast<double>(picks.numel());
  auto naive = static_cast<double>(cfg.experts) * (f * probs.mean(0)).sum();
  auto grad_naive = torch::autograd::grad({naive}, {router})[0];
  double norm_balance = grad_balance.norm().item<double>(), norm_y = grad_y.norm().item<double>();
  CheckResult nonzero{norm_balance > 0 && norm_y > 0, 0.0, 0.0,
                      "router gradient norms: balance loss " + std::to_string(norm_balance) + ", output " +
                          std::to_string(norm_y) + " (must be > 0)"};
  return all_of({expect_close("d balance_loss / d router vs naive (f constant, through P)",
                              scaled_max_error(grad_balance, grad_naive), kFloat64Tol),
                 nonzero});
}


// Autocast has no rule for at::_grouped_mm, so `grouped` casts its operands itself (sparse.hpp).
// Under bfloat16 autocast, float32 rows and experts give bit for bit what the same values rounded
// to bfloat16 give without autocast: the output, the rows' gradient and each expert's gradient
// (which autocast returns in float32). Multiplying in float32 instead, as before the cast, the
// output differs from the bfloat16 one by about bfloat16's rounding, so the check would fail.
CheckResult grouped_autocast_multiplies_in_bfloat16(uint64_t seed) {
  auto cfg = MoeConfig::parse(testing::args(kDModel, 64, R"({"experts": 4, "top_k": 2, "expert_hidden": 48})"));
  const std::vector<int64_t> counts{5, 0, 9, 6};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto normal = [&gen](std::vector<int64_t> shape, double scale) {
    return torch::empty(shape, torch::kFloat64).normal_(0.0, scale, gen).to(torch::kFloat32);
  };
  const int64_t h = cfg.expert_hidden, d = cfg.d_model;
  const std::vector<Tensor> values{normal({20, d}, 1.0), normal({4, h, d}, 0.2), normal({4, h, d}, 0.2),
                                   normal({4, d, h}, 0.2)};
  auto upstream = normal({20, d}, 1.0);
  // y and the gradients of <y, upstream> for the rows and the three expert stacks.
  auto run = [&](torch::ScalarType dtype, bool autocast) {
    std::vector<Tensor> in;
    for (const auto& v : values) in.push_back(v.to(dtype, false, /*copy=*/true).requires_grad_(true));
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, autocast);
    auto y = GroupedGemm::run(in[0], counts, ExpertStack{in[1], in[2], in[3]}, cfg);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    (y.to(torch::kFloat32) * upstream).sum().backward();
    std::vector<Tensor> out{y.detach().to(torch::kFloat32)};
    for (const auto& t : in) out.push_back(t.grad().to(torch::kFloat32));
    return out;
  };
  auto autocast = run(torch::kFloat32, true), rounded = run(torch::kBFloat16, false);
  const char* names[] = {"y", "grad rows", "grad w_in", "grad w_gate", "grad w_out"};
  std::vector<CheckResult> results;
  for (size_t i = 0; i < autocast.size(); ++i)
    results.push_back(expect_close(std::string("grouped under bfloat16 autocast vs bfloat16 operands: ") + names[i],
                                   scaled_max_error(autocast[i], rounded[i]), 0.0));
  return all_of(results);
}

// The fused SwiGLU (swiglu_kernel.hpp) against silu(a) * b composed in float64 on the same
// inputs (rounded to the dtype first), forward and both gradients. Lengths leave a partial
// vector and cross the parallel grain; |a| up to 100 saturates the sigmoid both ways.
CheckResult swiglu_fused_matches_float64(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<CheckResult> results;
  for (int64_t n : {int64_t{1}, int64_t{37}, 3 * ffn::SwiGluFunction::kGrain + 5}) {
    auto normal = [&](double std) { return torch::empty({n}, torch::kFloat64).normal_(0.0, std, gen); };
    auto a64 = normal(3.0), b64 = normal(1.0), g64 = normal(1.0);
    if (n >= 37) a64.narrow(0, 0, 5).copy_(torch::tensor({-100.0, -20.0, 0.0, 20.0, 100.0}, torch::kFloat64));
    for (auto dtype : {torch::kFloat64, torch::kFloat32, torch::kBFloat16}) {
      auto leaf = [&](const Tensor& t, torch::ScalarType as) {
        return t.to(dtype).to(as, false, /*copy=*/true).requires_grad_(true);
      };
      auto a = leaf(a64, dtype), b = leaf(b64, dtype);
      auto h = ffn::SwiGluFunction::apply(a, b);
      h.backward(g64.to(dtype));
      auto ar = leaf(a64, torch::kFloat64), br = leaf(b64, torch::kFloat64);
      auto hr = torch::silu(ar) * br;
      hr.backward(g64.to(dtype).to(torch::kFloat64));
      // float32: libmvec's expf (a few ulp); bfloat16: each output rounded once (2^-9 relative).
      const double tol = dtype == torch::kFloat64 ? 1e-12 : dtype == torch::kFloat32 ? 1e-6 : 5e-3;
      const std::string where = "n=" + std::to_string(n) + " " + c10::toString(dtype) + " ";
      results.push_back(expect_close(where + "h", scaled_max_error(h, hr), tol));
      results.push_back(expect_close(where + "grad a", scaled_max_error(a.grad(), ar.grad()), tol));
      results.push_back(expect_close(where + "grad b", scaled_max_error(b.grad(), br.grad()), tol));
    }
  }
  return all_of(results);
}

// Output, aux losses and gradients of a 4-expert top-2 layer with `kernels`, in x's dtype.
template <typename Impl>
std::vector<Tensor> with_kernels(const std::string& kernels, const Tensor& x, uint64_t seed) {
  auto layer = make<Impl>(R"({"experts": 4, "top_k": 2, "expert_hidden": 48, "kernels": ")" + kernels + "\"}");
  return outputs_and_gradients(layer, testing::make_params(layer, x.scalar_type(), seed), x, seed);
}

// `kernels` fused and reference on the same weights: the dense `mlp` (float64 and float32), the
// `grouped` experts (float32), and `grouped` and `sparse` in bfloat16, the output and every gradient.
CheckResult kernels_equal_reference(uint64_t seed) {
  std::vector<CheckResult> results;
  auto compare = [&](const std::string& what, const auto& run, double tol) {
    auto fused = run("fused"), reference = run("reference");
    for (size_t i = 0; i < fused.size(); ++i)
      results.push_back(
          expect_close(what + " output " + std::to_string(i), scaled_max_error(fused[i], reference[i]), tol));
  };
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto x = random_tokens(2, 9, kDModel, dtype, seed);
    auto run = [&](const std::string& kernels) {
      ffn::Mlp mlp(
          testing::args(kDModel, 64, R"({"activation": "swiglu", "hidden": 48, "kernels": ")" + kernels + "\"}"));
      auto p = testing::with_grad(testing::make_params(mlp, dtype, seed));
      auto xg = x.detach().clone().requires_grad_(true);
      auto y = mlp.forward(xg, p, Call{}).y;
      (y * y).sum().backward();
      std::vector<Tensor> out{y.detach(), xg.grad()};
      for (const auto& t : p.tensors()) out.push_back(t.grad());
      return out;
    };
    compare(std::string("mlp ") + c10::toString(dtype), run, dtype == torch::kFloat64 ? 1e-12 : 1e-5);
  }
  auto x = random_tokens(2, 9, kDModel, torch::kFloat32, seed);
  compare("moe grouped float32", [&](const std::string& k) { return with_kernels<MoeGrouped>(k, x, seed); }, 1e-5);
  // bfloat16 on the CPU: fused also pads each group to 64 rows (sparse.hpp); the two differ by the
  // SwiGLU's and the products' bfloat16 roundings only.
  auto x16 = random_tokens(2, 9, kDModel, torch::kBFloat16, seed);
  compare("moe grouped bfloat16", [&](const std::string& k) { return with_kernels<MoeGrouped>(k, x16, seed); }, 3e-2);
  compare("moe sparse bfloat16", [&](const std::string& k) { return with_kernels<MoeSparse>(k, x16, seed); }, 3e-2);
  return all_of(results);
}

}  // namespace

// Every check runs for every implementation it concerns (dense, loop, grouped,
// sparse); the sparse forms are also held to dense in float64 in every dtype.
std::vector<Check> family_checks() {
  return {
      {"moe_routing_weights_sum_to_1", weights_sum_to_one},
      {"moe_balance_loss_1_at_balance", balance_loss_is_one_at_balance},
      {"moe_z_loss_at_zero_logits", z_loss_at_zero_logits},
      {"moe_router_grad_through_p_not_f", router_learns_through_probabilities},
      {"moe_loop_matches_float64_dense", matches_float64_dense<MoeLoop>},
      {"moe_grouped_matches_float64_dense", matches_float64_dense<MoeGrouped>},
      {"moe_grouped_autocast_multiplies_in_bfloat16", grouped_autocast_multiplies_in_bfloat16},
      {"moe_sparse_matches_float64_dense", matches_float64_dense<MoeSparse>},
      {"moe_dense_token_weights_match_routing", token_weights_match_routing<MoeDense>},
      {"moe_loop_token_weights_match_routing", token_weights_match_routing<MoeLoop>},
      {"moe_grouped_token_weights_match_routing", token_weights_match_routing<MoeGrouped>},
      {"moe_sparse_token_weights_match_routing", token_weights_match_routing<MoeSparse>},
      {"moe_dense_token_permutation", tokens_permute<MoeDense>},
      {"moe_loop_token_permutation", tokens_permute<MoeLoop>},
      {"moe_grouped_token_permutation", tokens_permute<MoeGrouped>},
      {"moe_sparse_token_permutation", tokens_permute<MoeSparse>},
      {"moe_dense_top_all_is_softmax_mixture", all_experts_are_softmax_mixture<MoeDense>},
      {"moe_loop_top_all_is_softmax_mixture", all_experts_are_softmax_mixture<MoeLoop>},
      {"moe_grouped_top_all_is_softmax_mixture", all_experts_are_softmax_mixture<MoeGrouped>},
      {"moe_sparse_top_all_is_softmax_mixture", all_experts_are_softmax_mixture<MoeSparse>},
      {"moe_dense_one_expert_is_mlp", one_expert_is_mlp<MoeDense>},
      {"moe_loop_one_expert_is_mlp", one_expert_is_mlp<MoeLoop>},
      {"moe_grouped_one_expert_is_mlp", one_expert_is_mlp<MoeGrouped>},
      {"moe_sparse_one_expert_is_mlp", one_expert_is_mlp<MoeSparse>},
      {"moe_dense_capacity", capacity<MoeDense>},
      {"moe_loop_capacity", capacity<MoeLoop>},
      {"moe_grouped_capacity", capacity<MoeGrouped>},
      {"moe_sparse_capacity", capacity<MoeSparse>},
      {"moe_dense_capacity_order", capacity_order<MoeDense>},
      {"moe_loop_capacity_order", capacity_order<MoeLoop>},
      {"moe_grouped_capacity_order", capacity_order<MoeGrouped>},
      {"moe_sparse_capacity_order", capacity_order<MoeSparse>},
      {"ffn_swiglu_fused_matches_float64", swiglu_fused_matches_float64},
      {"ffn_kernels_equal_reference", kernels_equal_reference},
  };
}

}  // namespace mixlab::moe
