// Family checks for MLA: `naive` against an independent float64 rebuild of the
// paper's equations (outputs and gradients), `absorbed` against `naive` on the
// same weights, decode (latent cache) against the full forward, what the cache
// holds, and RoPE's shift invariance through the decoupled rope key.
#include "checks.hpp"

#include "absorbed.hpp"
#include "module.hpp"
#include "naive.hpp"

#include <mixlab/testing.hpp>

namespace mixlab::mla {
namespace {

using torch::Tensor;
namespace mt = mixlab::testing;

constexpr int64_t kDModel = 64;
constexpr int64_t kBatch = 2;
// Compressed query, v_head_dim != nope_head_dim: every feature at once.
const std::string kLowRankQ =
    R"({"n_heads": 4, "latent_dim": 24, "q_latent_dim": 32, "nope_head_dim": 16, "rope_head_dim": 8, "v_head_dim": 12})";
// Full-rank query (DeepSeek-V2-Lite), odd head count, another RoPE base.
const std::string kFullQ =
    R"({"n_heads": 3, "latent_dim": 16, "nope_head_dim": 8, "rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 500.0})";
const std::vector<std::pair<std::string, std::string>> kConfigs{{"low-rank query", kLowRankQ},
                                                                {"full-rank query", kFullQ}};

Tensor normal(std::vector<int64_t> shape, torch::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::empty(shape, torch::kFloat64).normal_(0.0, 1.0, gen).to(dtype);
}

template <class Core>
Mla<Core> make(const std::string& config) {
  return Mla<Core>(mt::args(kDModel, 256, config));
}

// ---- The independent rebuild: the equations of common.hpp written out per
// head and per query position in float64, sharing no code with the plugin.

Tensor rms_norm(const Tensor& v, const Tensor& weight, double eps) {
  return v / (v.pow(2).mean(-1, true) + eps).sqrt() * weight;
}

// Channel pair (i, i + d/2) of v (..., T, d) at position `first + t` turns by
// (first + t) * theta^(-2i/d).
Tensor rotate_pairs(const Tensor& v, int64_t first, double theta) {
  const int64_t half = v.size(-1) / 2, T = v.size(-2);
  auto t = torch::arange(T, torch::kFloat64).unsqueeze(-1) + static_cast<double>(first);
  auto angle = t * torch::pow(theta, torch::arange(half, torch::kFloat64) * (-2.0 / static_cast<double>(2 * half)));
  auto a = v.narrow(-1, 0, half), b = v.narrow(-1, half, half);
  return torch::cat({a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()}, -1);
}

// The latent c_KV and the rotated rope key k_R of x (B, T, d_model) at positions first ... first + T - 1.
std::pair<Tensor, Tensor> rebuild_latents(const MlaConfig& c, const Tensor& x, const Params& p, int64_t first = 0) {
  return {rms_norm(torch::matmul(x, p["wkv_down"].t()), p["kv_norm"], c.norm_eps),
          rotate_pairs(torch::matmul(x, p["wk_rope"].t()), first, c.rope.theta)};
}

Tensor rebuild_forward(const MlaConfig& c, const Tensor& x, const Params& p, int64_t first = 0) {
  const int64_t T = x.size(1), dn = c.nope_head_dim, dr = c.rope_head_dim, dv = c.v_head_dim;
  auto q_all = c.q_latent_dim
                   ? torch::matmul(rms_norm(torch::matmul(x, p["wq_down"].t()), p["q_norm"], c.norm_eps), p["wq_up"].t())
                   : torch::matmul(x, p["wq"].t());
  auto [latent, k_r] = rebuild_latents(c, x, p, first);
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < c.n_heads; ++h) {
    auto q_h = q_all.narrow(-1, h * (dn + dr), dn + dr);
    auto q_c = q_h.narrow(-1, 0, dn), q_r = rotate_pairs(q_h.narrow(-1, dn, dr), first, c.rope.theta);
    auto k_c = torch::matmul(latent, p["wk_up"].narrow(0, h * dn, dn).t());  // (B, T, d_n)
    auto v = torch::matmul(latent, p["wv_up"].narrow(0, h * dv, dv).t());    // (B, T, d_v)
    std::vector<Tensor> rows;
    for (int64_t t = 0; t < T; ++t) {
      auto seen = [&](const Tensor& k) { return k.narrow(1, 0, t + 1); };
      auto s = ((q_c.select(1, t).unsqueeze(1) * seen(k_c)).sum(-1) +
                (q_r.select(1, t).unsqueeze(1) * seen(k_r)).sum(-1)) *
               c.softmax_scale;  // (B, t + 1)
      auto e = (s - std::get<0>(s.max(-1, true))).exp();
      rows.push_back(((e / e.sum(-1, true)).unsqueeze(-1) * seen(v)).sum(1));  // (B, d_v)
    }
    heads.push_back(torch::stack(rows, 1));
  }
  return torch::matmul(torch::cat(heads, -1), p["wo"].t());
}

// ---- Runs: y and the gradients of <y, g> for a fixed random g, x first, then the parameters.

struct Run {
  Tensor y;
  std::vector<Tensor> grads;
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
Run run(const std::string& config, torch::ScalarType dtype, int64_t T, uint64_t seed) {
  auto m = make<Core>(config);
  return run_with(m, [&](const Tensor& x, const Params& p) { return m.forward(x, p, {}).y; }, dtype, T, seed);
}

Run run_rebuild(const std::string& config, int64_t T, uint64_t seed) {
  auto m = make<Naive>(config);
  return run_with(m, [&](const Tensor& x, const Params& p) { return rebuild_forward(m.config(), x, p); },
                  torch::kFloat64, T, seed);
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

// naive == rebuild: float64 tight, float32 against the float64 rebuild per §9.
CheckResult naive_equals_rebuild(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const auto& [name, config] : kConfigs) {
    auto want = run_rebuild(config, 13, seed);
    append(results, compare(name + " naive float64 vs rebuild, T=13", run<Naive>(config, torch::kFloat64, 13, seed),
                            want, 1e-10, 1e-10));
    append(results, compare(name + " naive float32 vs rebuild float64, T=13",
                            run<Naive>(config, torch::kFloat32, 13, seed), want, 1e-4, 1e-3));
  }
  return mt::all_of(results);
}

// absorbed == naive on the same weights and inputs.
CheckResult absorbed_equals_naive(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const auto& [name, config] : kConfigs) {
    auto want = run<Naive>(config, torch::kFloat64, 40, seed);
    append(results, compare(name + " absorbed float64 vs naive, T=40",
                            run<Absorbed>(config, torch::kFloat64, 40, seed), want, 1e-10, 1e-10));
    append(results, compare(name + " absorbed float32 vs naive float64, T=40",
                            run<Absorbed>(config, torch::kFloat32, 40, seed), want, 1e-4, 1e-3));
  }
  auto got = run<Absorbed>(kLowRankQ, torch::kBFloat16, 40, seed), want = run<Naive>(kLowRankQ, torch::kBFloat16, 40, seed);
  results.push_back(mt::expect_close("bfloat16 y relative RMS, absorbed vs naive in bfloat16",
                                     mt::relative_rms(got.y, want.y), 5e-3));
  return mt::all_of(results);
}

// Token by token and in uneven chunks, `Core`'s decode equals the naive forward.
template <class Core>
CheckResult decode_equals_forward(const std::string& name, uint64_t seed) {
  const int64_t T = 23;
  std::vector<CheckResult> results;
  for (const auto& [config_name, config] : kConfigs) {
    auto m = make<Core>(config);
    auto params = mt::make_params(m, torch::kFloat64, seed);
    auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
    auto y = make<Naive>(config).forward(x, params, {}).y;
    for (const std::vector<int64_t>& chunks : {std::vector<int64_t>(T, 1), std::vector<int64_t>{5, 1, 9, 2, 6}}) {
      const std::string how = static_cast<int64_t>(chunks.size()) == T ? "token by token" : "chunks 5,1,9,2,6";
      results.push_back(mt::expect_close(name + " decode " + how + " vs naive forward, " + config_name,
                                         mt::scaled_max_error(mt::decode_in_chunks(m, x, chunks, params), y), 1e-10));
    }
  }
  return mt::all_of(results);
}

// After T tokens the decode state is exactly the rebuild's latent c_KV and
// rotated rope key (nothing per head), and cost() counts those bytes.
template <class Core>
CheckResult cache_is_latent_and_rope_key(const std::string& name, uint64_t seed) {
  const int64_t T = 9;
  auto m = make<Core>(kLowRankQ);
  const auto& c = m.config();
  auto params = mt::make_params(m, torch::kFloat64, seed);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
  auto state = m.new_state(kBatch, x.options());
  m.step(*state, x.narrow(1, 0, 4), params);
  m.step(*state, x.narrow(1, 4, T - 4), params);
  const auto& cache = dynamic_cast<const LatentCache&>(*state);
  auto [latent, k_r] = rebuild_latents(c, x, params);
  const double cached = static_cast<double>(cache.kv.c_kv.numel() + cache.kv.k_rope.numel());
  const double expected = static_cast<double>(kBatch * T * (c.latent_dim + c.rope_head_dim));
  return mt::all_of({
      mt::expect_close(name + " cached c_KV vs rebuild", mt::scaled_max_error(cache.kv.c_kv, latent), 1e-12),
      mt::expect_close(name + " cached k_R vs rebuild", mt::scaled_max_error(cache.kv.k_rope, k_r), 1e-12),
      mt::expect_close(name + " cached values vs B T (latent_dim + rope_head_dim)", std::abs(cached - expected), 0.0),
      mt::expect_close(name + " cost().state_bytes vs (latent_dim + rope_head_dim) T bytes",
                       std::abs(m.cost(T, 2).state_bytes - 2.0 * T * (c.latent_dim + c.rope_head_dim)), 0.0),
  });
}

// Shifting every position leaves the layer unchanged: the rope query and the
// shared rope key turn together (float64), and decode continues the positions.
CheckResult rope_shift_invariance(uint64_t seed) {
  const int64_t T = 17, shift = 45;
  std::vector<CheckResult> results;
  auto m = make<Absorbed>(kLowRankQ);
  auto params = mt::make_params(m, torch::kFloat64, seed);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
  auto pos = torch::arange(T, torch::kLong);
  results.push_back(mt::expect_close("absorbed output, positions shifted by " + std::to_string(shift),
                                     mt::scaled_max_error(m.forward_at(x, params, pos + shift), m.forward_at(x, params, pos)),
                                     1e-10));
  results.push_back(mt::expect_close("rebuild output, positions shifted by " + std::to_string(shift),
                                     mt::scaled_max_error(rebuild_forward(m.config(), x, params, shift),
                                                          rebuild_forward(m.config(), x, params)),
                                     1e-10));
  return mt::all_of(results);
}

}  // namespace

std::vector<Check> family_checks() {
  return {
      {"naive_equals_float64_rebuild", naive_equals_rebuild},
      {"absorbed_equals_naive", absorbed_equals_naive},
      {"decode_equals_forward",
       [](uint64_t s) {
         return mt::all_of({decode_equals_forward<Naive>("naive", s), decode_equals_forward<Absorbed>("absorbed", s)});
       }},
      {"cache_is_latent_and_rope_key",
       [](uint64_t s) {
         return mt::all_of(
             {cache_is_latent_and_rope_key<Naive>("naive", s), cache_is_latent_and_rope_key<Absorbed>("absorbed", s)});
       }},
      {"rope_shift_invariance", rope_shift_invariance},
  };
}

}  // namespace mixlab::mla
