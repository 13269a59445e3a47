// Family checks for Titans: `naive` against an independent float64 rebuild of
// the paper's recurrence whose inner gradient comes from autograd (outputs and
// gradients), `chunked` against `naive` on the same weights, decode against the
// full forward, what the decode state holds, and update_at_inference = false.
#include "checks.hpp"

#include "chunked.hpp"
#include "module.hpp"
#include "naive.hpp"

#include <mixlab/testing.hpp>

namespace mixlab::titans {
namespace {

using torch::Tensor;
namespace mt = mixlab::testing;

constexpr int64_t kDModel = 32;
constexpr int64_t kBatch = 2;
// Two-layer memory, persistent tokens, chunks that cut the sequence unevenly, a
// surprise clamp that some tokens' gradients exceed and others do not.
const std::string kDeep =
    R"({"n_heads": 4, "memory_depth": 2, "chunk_size": 4, "persistent_tokens": 3, "inner_lr": 0.3, "inner_max_grad_norm": 1.9})";
// Linear memory with chunk_size 1: online gradient descent with momentum, unclamped.
const std::string kOnline = R"({"n_heads": 2, "memory_depth": 1, "chunk_size": 1, "inner_lr": 0.8, "inner_max_grad_norm": 0})";
// The memory frozen outside training (after learning the persistent tokens).
const std::string kFrozen =
    R"({"n_heads": 2, "memory_depth": 2, "memory_expansion": 3, "chunk_size": 5, "persistent_tokens": 2, "update_at_inference": false})";
const std::vector<std::pair<std::string, std::string>> kConfigs{
    {"depth 2, chunk 4, 3 persistent", kDeep}, {"depth 1, chunk 1", kOnline}, {"frozen at inference", kFrozen}};

Tensor normal(std::vector<int64_t> shape, torch::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::empty(shape, torch::kFloat64).normal_(0.0, 1.0, gen).to(dtype);
}

template <class Core>
Titans<Core> make(const std::string& config) {
  return Titans<Core>(mt::args(kDModel, 256, config));
}

// ---- The independent rebuild: the recurrence of common.hpp written out per
// head and per token in float64, the inner gradient ∇l taken by autograd (with
// create_graph, so the outer gradients flow through it), sharing no code with
// the plugin.

struct Rebuild {
  Tensor y;
  std::vector<std::vector<Tensor>> weights, momentum;  // per head, per layer: (B, out, in) after the last token
  int64_t updates = 0, clamped = 0;                    // token updates (per row and head), and those clamped
};

Tensor memory_apply(const std::vector<Tensor>& w, const Tensor& z) {  // z (B, in) -> (B, out)
  auto h = torch::bmm(w[0], z.unsqueeze(-1)).squeeze(-1);
  if (w.size() == 1) return h;
  return torch::bmm(w[1], (h * torch::sigmoid(h)).unsqueeze(-1)).squeeze(-1);
}

// update: whether the data tokens update the memory (the persistent ones always do).
Rebuild rebuild(const TitansConfig& c, const Tensor& x, const Params& p, bool update) {
  const int64_t B = x.size(0), T = x.size(1), Np = c.persistent_tokens, H = c.n_heads, dh = c.head_dim;
  auto xe = Np > 0 ? torch::cat({p["persistent"].unsqueeze(0).expand({B, Np, c.d_model}), x}, 1) : x;
  auto unit = [](const Tensor& v) { return v / (v.pow(2).sum(-1, true) + 1e-6).sqrt(); };
  Rebuild r;
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    auto rows = [&](const char* w) { return torch::matmul(xe, p[w].narrow(0, h * dh, dh).t()); };  // (B, Np + T, d_h)
    auto q = unit(rows("wq")), k = unit(rows("wk")), v = unit(rows("wv"));
    auto gate = [&](int64_t which) {
      return torch::sigmoid(torch::matmul(xe, p["w_gates"][which * H + h]) + p["b_gates"][which * H + h]);
    };
    auto alpha = gate(0), eta = gate(1), theta = c.inner_lr * gate(2);  // (B, Np + T)
    std::vector<Tensor> W, S, anchor;
    for (const auto& name : c.memory_names()) {
      W.push_back(p[name][h].unsqueeze(0).expand({B, -1, -1}));
      S.push_back(torch::zeros_like(W.back()));
    }
    std::vector<Tensor> outs;
    for (int64_t t = 0; t < Np + T; ++t) {
      if (t < Np || update) {
        if (t % c.chunk_size == 0) anchor = W;
        std::vector<Tensor> at;
        for (const auto& w : anchor) at.push_back(w.requires_grad() ? w : w.detach().requires_grad_(true));
        auto loss = (memory_apply(at, k.select(1, t)) - v.select(1, t)).pow(2).sum();
        auto u = torch::autograd::grad({loss}, at, {}, /*retain_graph=*/true, /*create_graph=*/true);
        // The surprise clamp: the step θ u is never longer than θ ρ.
        auto step = theta.select(1, t);  // (B)
        if (c.inner_max_grad_norm > 0) {
          auto squared = torch::zeros({B}, x.options());
          for (const auto& ul : u) squared = squared + ul.pow(2).sum({1, 2});
          auto factor = (c.inner_max_grad_norm / squared.sqrt()).clamp_max(1.0);
          step = step * factor;
          r.clamped += (factor < 1.0).sum().item<int64_t>();
        }
        r.updates += B;
        for (size_t l = 0; l < W.size(); ++l) {
          auto per_row = [&](const Tensor& s) { return s.select(1, t).view({B, 1, 1}); };
          S[l] = per_row(eta) * S[l] - step.view({B, 1, 1}) * u[l];
          W[l] = (1 - per_row(alpha)) * W[l] + S[l];
        }
      }
      if (t >= Np) outs.push_back(memory_apply(W, q.select(1, t)));
    }
    r.weights.push_back(W);
    r.momentum.push_back(S);
    auto o = torch::stack(outs, 1);  // (B, T, d_h)
    heads.push_back(o / (o.pow(2).mean(-1, true) + c.norm_eps).sqrt());
  }
  auto gated = torch::cat(heads, -1) * p["out_norm"] * torch::sigmoid(torch::matmul(x, p["w_gate"].t()));
  r.y = torch::matmul(gated, p["wo"].t());
  return r;
}

// ---- Runs: y and the gradients of <y, g> for a fixed random g, x first, then the parameters.

struct Run {
  Tensor y;
  std::vector<Tensor> grads;
  double clamped_share = 0;  // the rebuild's: the share of its token updates the surprise clamp shortened
};

template <class Fn>
Run run_with(const Module& m, Fn&& forward, torch::ScalarType dtype, int64_t T, uint64_t seed) {
  auto params = mt::with_grad(mt::make_params(m, dtype, seed));
  auto x = normal({kBatch, T, kDModel}, dtype, seed + 1).requires_grad_(true);
  Tensor y = forward(x, params);
  (y * normal(y.sizes().vec(), dtype, seed + 2)).sum().backward();
  Run r{y.detach(), {x.grad()}};
  for (const auto& t : params.tensors()) r.grads.push_back(t.grad());
  return r;
}

template <class Core>
Run run(const std::string& config, torch::ScalarType dtype, int64_t T, uint64_t seed, bool training) {
  auto m = make<Core>(config);
  return run_with(m, [&](const Tensor& x, const Params& p) { return m.forward(x, p, {training, 0}).y; }, dtype, T, seed);
}

Run run_rebuild(const std::string& config, int64_t T, uint64_t seed, bool training) {
  auto m = make<Naive>(config);
  const bool update = training || m.config().update_at_inference;
  int64_t updates = 0, clamped = 0;
  auto r = run_with(
      m,
      [&](const Tensor& x, const Params& p) {
        auto b = rebuild(m.config(), x, p, update);
        updates = b.updates, clamped = b.clamped;
        return b.y;
      },
      torch::kFloat64, T, seed);
  r.clamped_share = updates > 0 ? static_cast<double>(clamped) / static_cast<double>(updates) : 0;
  return r;
}

std::vector<CheckResult> compare(const std::string& what, const Run& got, const Run& want, double out_tol,
                                 double grad_tol) {
  double grad_err = 0;
  for (size_t i = 0; i < got.grads.size(); ++i)
    grad_err = std::max(grad_err, mt::nan_as_inf(mt::scaled_max_error(got.grads[i], want.grads[i])));
  return {mt::expect_close(what + " y", mt::scaled_max_error(got.y, want.y), out_tol),
          mt::expect_close(what + " gradients (x and every parameter)", grad_err, grad_tol)};
}

void append(std::vector<CheckResult>& to, std::vector<CheckResult> more) {
  to.insert(to.end(), more.begin(), more.end());
}

// naive == rebuild: float64 tight, float32 against the float64 rebuild. The
// clamp must be exercised both ways (kDeep clamps some tokens and not others).
CheckResult naive_equals_rebuild(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const auto& [name, config] : kConfigs)
    for (bool training : {true, false}) {
      const std::string what = name + (training ? " (training)" : " (evaluation)");
      auto want = run_rebuild(config, 13, seed, training);
      if (config == kDeep && training) {
        const double share = want.clamped_share;
        results.push_back({share > 0.05 && share < 0.95, share, 0.05,
                           "share of token updates the surprise clamp shortens in the depth-2 config: " +
                               std::to_string(share) + " (must be in (0.05, 0.95))"});
      }
      append(results, compare(what + " naive float64 vs rebuild, T=13",
                              run<Naive>(config, torch::kFloat64, 13, seed, training), want, 1e-10, 1e-10));
      append(results, compare(what + " naive float32 vs rebuild float64, T=13",
                              run<Naive>(config, torch::kFloat32, 13, seed, training), want, 1e-4, 1e-3));
    }
  return mt::all_of(results);
}

// chunked == naive on the same weights and inputs, at chunk sizes that divide
// T, do not, and exceed it.
CheckResult chunked_equals_naive(uint64_t seed) {
  const int64_t T = 40;
  std::vector<CheckResult> results;
  auto configs = kConfigs;
  configs.push_back({"depth 2, chunk 16", R"({"n_heads": 2, "chunk_size": 16, "persistent_tokens": 1})"});
  configs.push_back({"depth 1, chunk 64", R"({"n_heads": 4, "memory_depth": 1, "chunk_size": 64})"});
  for (const auto& [name, config] : configs) {
    auto want = run<Naive>(config, torch::kFloat64, T, seed, true);
    append(results, compare(name + " chunked float64 vs naive, T=40", run<Chunked>(config, torch::kFloat64, T, seed, true),
                            want, 1e-10, 1e-10));
    append(results, compare(name + " chunked float32 vs naive float64, T=40",
                            run<Chunked>(config, torch::kFloat32, T, seed, true), want, 1e-4, 1e-3));
  }
  auto got = run<Chunked>(kDeep, torch::kBFloat16, T, seed, true), want = run<Naive>(kDeep, torch::kBFloat16, T, seed, true);
  results.push_back(mt::expect_close("bfloat16 y relative RMS, chunked vs naive in bfloat16",
                                     mt::relative_rms(got.y, want.y), 1e-2));
  return mt::all_of(results);
}

// Token by token and in uneven chunks, `Core`'s decode equals the naive
// forward outside training (which, with update_at_inference, learns as in training).
template <class Core>
CheckResult decode_equals_forward(const std::string& name, uint64_t seed) {
  const int64_t T = 23;
  std::vector<CheckResult> results;
  for (const auto& [config_name, config] : kConfigs) {
    auto m = make<Core>(config);
    auto params = mt::make_params(m, torch::kFloat64, seed);
    auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
    auto y = make<Naive>(config).forward(x, params, {false, 0}).y;
    for (const std::vector<int64_t>& chunks : {std::vector<int64_t>(T, 1), std::vector<int64_t>{5, 1, 9, 2, 6}}) {
      const std::string how = static_cast<int64_t>(chunks.size()) == T ? "token by token" : "chunks 5,1,9,2,6";
      results.push_back(mt::expect_close(name + " decode " + how + " vs naive forward, " + config_name,
                                         mt::scaled_max_error(mt::decode_in_chunks(m, x, chunks, params), y), 1e-10));
    }
  }
  return mt::all_of(results);
}

// After decoding T tokens in uneven steps, the state is exactly the rebuild's
// memory weights M_T and momentum S_T (nothing grows with T), and
// cost().state_bytes counts weights, momentum and chunk-start weights.
template <class Core>
CheckResult state_is_memory(const std::string& name, uint64_t seed) {
  const int64_t T = 11;
  std::vector<CheckResult> results;
  for (const auto& [config_name, config] : kConfigs) {
    auto m = make<Core>(config);
    const auto& c = m.config();
    auto params = mt::make_params(m, torch::kFloat64, seed);
    auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
    auto state = m.new_state(kBatch, x.options());
    m.step(*state, x.narrow(1, 0, 3), params);
    m.step(*state, x.narrow(1, 3, T - 3), params);
    const auto& s = dynamic_cast<const MemoryState&>(*state);
    auto want = rebuild(c, x, params, c.update_at_inference);
    double err = 0;
    for (int64_t h = 0; h < c.n_heads; ++h)
      for (size_t l = 0; l < s.weights.size(); ++l) {
        err = std::max(err, mt::scaled_max_error(s.weights[l].select(1, h), want.weights[h][l]));
        err = std::max(err, mt::scaled_max_error(s.momentum[l].select(1, h), want.momentum[h][l]));
      }
    const double expected = 3.0 * kBatch * c.n_heads * c.memory_size();
    results.push_back(mt::expect_close(name + " state M_T, S_T vs rebuild, " + config_name, err, 1e-10));
    results.push_back(mt::expect_close(name + " state values vs 3 B H |M|, " + config_name,
                                       std::abs(static_cast<double>(s.values()) - expected), 0.0));
    results.push_back(mt::expect_close(name + " cost().state_bytes vs 3 H |M| bytes, " + config_name,
                                       std::abs(m.cost(T, 2).state_bytes - 2.0 * expected / kBatch), 0.0));
  }
  return mt::all_of(results);
}

// update_at_inference = false: evaluation retrieves from the memory the
// persistent tokens left (the rebuild without data updates, checked in
// naive_equals_float64_rebuild), which differs from what the same weights give
// while training; training is unaffected by the key.
CheckResult frozen_memory_differs_from_learning(uint64_t seed) {
  auto frozen = make<Chunked>(kFrozen);
  auto learning = make<Chunked>(R"({"n_heads": 2, "memory_depth": 2, "memory_expansion": 3, "chunk_size": 5, "persistent_tokens": 2})");
  auto params = mt::make_params(frozen, torch::kFloat64, seed);
  auto x = normal({kBatch, 30, kDModel}, torch::kFloat64, seed + 1);
  auto eval_frozen = frozen.forward(x, params, {false, 0}).y;
  auto train_frozen = frozen.forward(x, params, {true, 0}).y;
  auto eval_learning = learning.forward(x, params, {false, 0}).y;
  const double gap = mt::scaled_max_error(eval_frozen, eval_learning);
  CheckResult differs{gap >= 1e-3, gap, 1e-3,
                      "frozen vs learning memory in evaluation: scaled max difference " + std::to_string(gap) +
                          " (must be at least 1e-3)"};
  return mt::all_of({differs, mt::expect_close("training with update_at_inference = false vs true",
                                               mt::scaled_max_error(train_frozen, eval_learning), 0.0)});
}

// The surprise clamp keeps the inner descent bounded where the paper's
// unclamped update overflows: a grown two-layer memory (M_0 x 4), full inner
// step, momentum σ(4) ≈ 0.98, no forgetting, and every token the same (so all
// of a chunk's gradients add up in one direction), T = 256 in chunks of 16, in
// float32 as in training. Clamped, ||M_T|| <= ||M_0|| + inner_lr ρ T (T + 1) / 2
// (each token adds at most θ ρ to S, and S adds to M), and the output and every
// gradient are finite; unclamped, the same input is not finite.
CheckResult clamp_keeps_memory_bounded(uint64_t seed) {
  const int64_t T = 256;
  const std::string base = R"({"n_heads": 1, "memory_depth": 2, "chunk_size": 16, "inner_lr": 1.0)";
  auto worst = [&](Params& p) {
    for (const char* name : {"memory_w1", "memory_w2"}) p[name].mul_(4.0);
    auto b = p["b_gates"];
    b[0].fill_(-30.0);  // α = σ(-30): nothing forgotten
    b[1].fill_(4.0);    // η = σ(4)
    b[2].fill_(30.0);   // θ = inner_lr
  };
  auto x = normal({1, 1, kDModel}, torch::kFloat32, seed + 1).expand({kBatch, T, kDModel}).contiguous();

  auto clamped = make<Chunked>(base + "}");
  const double rho = clamped.config().inner_max_grad_norm;
  auto params = mt::make_params(clamped, torch::kFloat32, seed);
  {
    torch::NoGradGuard no_grad;
    worst(params);
  }
  double m0 = 0;
  for (const char* name : {"memory_w1", "memory_w2"}) m0 += params[name].pow(2).sum().item<double>();
  m0 = std::sqrt(m0);
  auto state = clamped.new_state(kBatch, x.options());
  clamped.step(*state, x, params);
  const auto& s = dynamic_cast<const MemoryState&>(*state);
  double mt_norm = 0;  // the largest ||M_T|| over batch rows
  {
    auto squared = torch::zeros({kBatch}, torch::kFloat64);
    for (const auto& w : s.weights) squared += w.to(torch::kFloat64).pow(2).sum({1, 2, 3});
    mt_norm = squared.sqrt().max().item<double>();
  }
  const double bound = m0 + clamped.config().inner_lr * rho * static_cast<double>(T * (T + 1)) / 2.0;
  CheckResult bounded{std::isfinite(mt_norm) && mt_norm <= bound, mt_norm, bound,
                      "clamped ||M_T|| " + std::to_string(mt_norm) + " vs bound ||M_0|| + inner_lr rho T (T + 1) / 2 = " +
                          std::to_string(bound)};

  auto finite = [&](const Module& m) {
    auto p = mt::with_grad(mt::make_params(m, torch::kFloat32, seed));
    {
      torch::NoGradGuard no_grad;
      worst(p);
    }
    auto xg = x.clone().requires_grad_(true);
    auto y = m.forward(xg, p, {true, 0}).y;
    y.sum().backward();
    bool ok = torch::isfinite(y).all().item<bool>() && torch::isfinite(xg.grad()).all().item<bool>();
    for (const auto& t : p.tensors()) ok = ok && torch::isfinite(t.grad()).all().item<bool>();
    return ok;
  };
  const bool clamped_finite = finite(clamped);
  const bool unclamped_finite = finite(make<Chunked>(base + R"(, "inner_max_grad_norm": 0})"));
  return mt::all_of({bounded,
                     {clamped_finite, clamped_finite ? 0.0 : 1.0, 0.0,
                      "clamped: y and the gradients of x and every parameter finite"},
                     {!unclamped_finite, unclamped_finite ? 1.0 : 0.0, 0.0,
                      "unclamped (inner_max_grad_norm = 0): the same input overflows (so it exercises the clamp)"}});
}

}  // namespace

std::vector<Check> family_checks() {
  return {
      {"naive_equals_float64_rebuild", naive_equals_rebuild},
      {"chunked_equals_naive", chunked_equals_naive},
      {"decode_equals_forward",
       [](uint64_t s) {
         return mt::all_of({decode_equals_forward<Naive>("naive", s), decode_equals_forward<Chunked>("chunked", s)});
       }},
      {"state_is_memory_weights_and_momentum",
       [](uint64_t s) { return mt::all_of({state_is_memory<Naive>("naive", s), state_is_memory<Chunked>("chunked", s)}); }},
      {"update_at_inference_false_freezes_memory", frozen_memory_differs_from_learning},
      {"surprise_clamp_keeps_memory_bounded", clamp_keeps_memory_bounded},
  };
}

}  // namespace mixlab::titans
