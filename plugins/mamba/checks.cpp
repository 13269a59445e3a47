// The Mamba family checks (mixers-research.md §1 "Invariants to check", §9
// tolerances): the cores against an independent quadratic form, the two blocks
// on one set of weights, state passing, groups, exact causality of the cores, and
// float32 chunked against float64 recurrent.
#include "checks.hpp"

#include "chunked.hpp"
#include "recurrent.hpp"

#include <mixlab/testing.hpp>

#include <algorithm>
#include <functional>

namespace mixlab::mamba {
namespace {

using mixlab::testing::expect_close;
using mixlab::testing::relative_rms;
using mixlab::testing::scaled_max_error;
using torch::Tensor;

constexpr double kFloat64Tol = 1e-10;  // §9: fp64 max-abs

// Inputs of an SSD core, distributed as in mamba_ssm's test_ssd: x, B, C ~ N(0, 1),
// dt = softplus(N(0, 1) - 4), A = -exp(U(0, 1)), an optional N(0, 1) initial state.
struct CoreInputs {
  Tensor x, dt, A, B, C, initial_state;

  static CoreInputs random(int64_t T, uint64_t seed, bool with_state, int64_t groups = 2) {
    const int64_t b = 2, h = 4, p = 16, n = 16;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto normal = [&](std::vector<int64_t> shape) { return torch::empty(shape, torch::kFloat64).normal_(0, 1, gen); };
    CoreInputs in;
    in.x = normal({b, T, h, p});
    in.dt = torch::softplus(normal({b, T, h}) - 4.0);
    in.A = -torch::exp(torch::empty({h}, torch::kFloat64).uniform_(0, 1, gen));
    in.B = normal({b, T, groups, n});
    in.C = normal({b, T, groups, n});
    if (with_state) in.initial_state = normal({b, h, p, n});
    return in;
  }

  CoreInputs to(torch::ScalarType dtype) const {
    auto cast = [&](const Tensor& t) { return t.defined() ? t.to(dtype) : t; };
    return {cast(x), cast(dt), cast(A), cast(B), cast(C), cast(initial_state)};
  }

  // Positions [begin, end) with the given initial state.
  CoreInputs slice(int64_t begin, int64_t end, const Tensor& state) const {
    return {x.slice(1, begin, end), dt.slice(1, begin, end), A, B.slice(1, begin, end), C.slice(1, begin, end), state};
  }
};

using Core = std::function<SsdResult(const CoreInputs&)>;

Core recurrent_core() {
  return [](const CoreInputs& in) { return ssd_recurrent(in.x, in.dt, in.A, in.B, in.C, in.initial_state); };
}
Core chunked_core(int64_t chunk) {
  return [chunk](const CoreInputs& in) { return ssd_chunked(in.x, in.dt, in.A, in.B, in.C, in.initial_state, chunk); };
}

std::vector<std::pair<std::string, Core>> all_cores() {
  return {{"recurrent", recurrent_core()}, {"chunked Q=16", chunked_core(16)}, {"chunked Q=64", chunked_core(64)}};
}

// The quadratic ("attention") form, written from the math and independent of both cores:
//   y_t = sum_{s<=t} (C_t . B_s) exp(cum_t - cum_s) dt_s x_s + exp(cum_t) C_t . S_0,  cum_t = sum_{r<=t} dt_r A,
//   S_T = sum_s exp(cum_T - cum_s) dt_s x_s ⊗ B_s + exp(cum_T) S_0.
// The cumsum difference is fine in float64 at these lengths.
SsdResult ssd_quadratic(const CoreInputs& in) {
  const int64_t T = in.x.size(1), r = in.x.size(2) / in.B.size(2);
  auto B = in.B.repeat_interleave(r, 2), C = in.C.repeat_interleave(r, 2);  // (b, T, h, n)
  auto cum = (in.dt * in.A).cumsum(1);                                       // (b, T, h)
  auto causal = torch::tril(torch::ones({T, T}, torch::kBool)).unsqueeze(-1);  // (t, s, 1)
  auto diff = cum.unsqueeze(2) - cum.unsqueeze(1);                             // (b, t, s, h)
  auto L = torch::where(causal, torch::exp(diff.masked_fill(causal.logical_not(), 0.0)), torch::zeros_like(diff));
  auto x_dt = in.x * in.dt.unsqueeze(-1);
  auto y = torch::einsum("btsh,bshp->bthp", {torch::einsum("bthn,bshn->btsh", {C, B}) * L, x_dt});
  auto to_end = torch::exp(cum.narrow(1, T - 1, 1) - cum);  // (b, s, h)
  auto final_state = torch::einsum("bshp,bshn->bhpn", {x_dt * to_end.unsqueeze(-1), B});
  if (in.initial_state.defined()) {
    y = y + torch::einsum("bthn,bhpn->bthp", {C, in.initial_state}) * torch::exp(cum).unsqueeze(-1);
    final_state = final_state + torch::exp(cum.select(1, T - 1)).unsqueeze(-1).unsqueeze(-1) * in.initial_state;
  }
  return {y, final_state};
}

// testing::all_of, with the worst comparison named and its error in full precision.
CheckResult all_of(const std::vector<CheckResult>& results) {
  auto out = testing::all_of(results);
  if (!out.passed) return out;
  auto ratio = [](const CheckResult& r) { return r.tolerance > 0 ? r.error / r.tolerance : r.error; };
  auto worst = std::max_element(results.begin(), results.end(),
                                [&](const CheckResult& a, const CheckResult& b) { return ratio(a) < ratio(b); });
  out.message = std::to_string(results.size()) + " comparisons passed; worst: " + worst->message;
  return out;
}

// y and final state of one run against another.
std::vector<CheckResult> compare(const std::string& what, const SsdResult& got, const SsdResult& want, double tol) {
  return {expect_close(what + " y", scaled_max_error(got.y, want.y), tol),
          expect_close(what + " final state", scaled_max_error(got.final_state, want.final_state), tol)};
}

// Invariant 1: recurrent == quadratic == chunked (Q 16 and 64), T not a multiple of Q
// included, with and without an initial state, float64.
CheckResult cores_equal_quadratic(uint64_t seed) {
  std::vector<CheckResult> results;
  for (int64_t T : {1, 15, 63, 64, 130, 200})
    for (bool with_state : {false, true}) {
      auto in = CoreInputs::random(T, seed + T, with_state);
      auto want = ssd_quadratic(in);
      for (const auto& [name, core] : all_cores()) {
        auto where = name + " vs quadratic, T=" + std::to_string(T) + (with_state ? " with S0" : "");
        for (auto& r : compare(where, core(in), want, kFloat64Tol)) results.push_back(r);
      }
    }
  return all_of(results);
}

// A/B swap: the `recurrent` and `chunked` blocks (both `kernels`) on the same weights give
// the same outputs and parameter gradients (float64, T not a multiple of the chunk).
CheckResult blocks_equal_on_same_weights(uint64_t seed) {
  const int64_t d_model = 32, T = 100;
  std::vector<CheckResult> results;
  MambaRecurrent reference(testing::args(d_model, T, "{}"));
  auto params = testing::make_params(reference, torch::kFloat64, seed);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  auto x = torch::empty({2, T, d_model}, torch::kFloat64).normal_(0, 1, gen);
  auto w = torch::empty({2, T, d_model}, torch::kFloat64).normal_(0, 1, gen);
  auto run = [&](const Mamba2Block& block) {
    auto p = testing::with_grad(params);
    auto y = block.forward(x, p, {}).y;
    (y * w).sum().backward();
    std::vector<Tensor> out{y.detach()};
    for (const auto& t : p.tensors()) out.push_back(t.grad());
    return out;
  };
  auto want = run(reference);
  for (int64_t chunk : {16, 64}) {
    for (const std::string kernels : {"fused", "reference"}) {
      MambaChunked chunked(testing::args(
          d_model, T, "{\"chunk_size\": " + std::to_string(chunk) + ", \"kernels\": \"" + kernels + "\"}"));
      auto got = run(chunked);
      auto where = "chunked (chunk_size " + std::to_string(chunk) + ", kernels " + kernels + ") vs recurrent, T=100: ";
      results.push_back(expect_close(where + "y", scaled_max_error(got[0], want[0]), kFloat64Tol));
      for (size_t i = 0; i < params.names().size(); ++i)
        results.push_back(expect_close(where + "grad " + params.names()[i],
                                       scaled_max_error(got[i + 1], want[i + 1]), kFloat64Tol));
    }
  }
  return all_of(results);
}

// kernels = "fused": segsum_fused (segsum_kernel.hpp) against the composed segsum. Forward bit
// for bit in float64, float32 and bfloat16 (both accumulate as ATen's cumsum does); the gradient
// of <segsum(a), g> for g random everywhere (above the diagonal too, where neither may pass it
// on) at 1e-12 in float64, 1e-5 in float32 and 1e-2 in bfloat16 (scaled max error; the sums
// run in another order).
CheckResult segsum_fused_equals_reference(uint64_t seed) {
  std::vector<CheckResult> results;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (int64_t Q : {1, 7, 64}) {
    auto a64 = -torch::softplus(torch::empty({2, 3, Q}, torch::kFloat64).normal_(0, 1, gen));
    auto g64 = torch::empty({2, 3, Q, Q}, torch::kFloat64).normal_(0, 1, gen);
    for (auto dtype : {torch::kFloat64, torch::kFloat32, torch::kBFloat16}) {
      const std::string where = "Q=" + std::to_string(Q) + " " + c10::toString(dtype) + " ";
      auto gradient = [&](const std::function<Tensor(const Tensor&)>& f) {
        auto a = a64.to(dtype, false, /*copy=*/true).requires_grad_(true);
        auto out = f(a);
        out.backward(g64.to(dtype));
        return std::pair{out.detach(), a.grad()};
      };
      auto [fused, fused_grad] = gradient(segsum_fused);
      auto [reference, reference_grad] = gradient(segsum);
      results.push_back(expect_close(where + "forward: entries that differ", fused.ne(reference).sum().item<double>(), 0.0));
      const double tol = dtype == torch::kFloat64 ? 1e-12 : dtype == torch::kFloat32 ? 1e-5 : 1e-2;
      results.push_back(expect_close(where + "gradient", scaled_max_error(fused_grad, reference_grad), tol));
    }
  }
  return all_of(results);
}

// Invariant 2: run [0:k], then [k:T] from S_k; equals the full run.
CheckResult state_passing(uint64_t seed) {
  const int64_t T = 130;
  auto in = CoreInputs::random(T, seed, /*with_state=*/true);
  std::vector<CheckResult> results;
  for (const auto& [name, core] : all_cores()) {
    auto full = core(in);
    for (int64_t k : {1, 37, 64, 129}) {
      auto head = core(in.slice(0, k, in.initial_state));
      auto tail = core(in.slice(k, T, head.final_state));
      SsdResult joined{torch::cat({head.y, tail.y}, 1), tail.final_state};
      for (auto& r : compare(name + ", split at " + std::to_string(k), joined, full, kFloat64Tol)) results.push_back(r);
    }
  }
  return all_of(results);
}

// Invariant 5: ngroups = g equals g = n_heads with B and C repeated per head.
CheckResult groups_equal_repeated_heads(uint64_t seed) {
  auto grouped = CoreInputs::random(75, seed, /*with_state=*/true, /*groups=*/2);
  auto per_head = grouped;
  const int64_t r = grouped.x.size(2) / grouped.B.size(2);
  per_head.B = grouped.B.repeat_interleave(r, 2);
  per_head.C = grouped.C.repeat_interleave(r, 2);
  std::vector<CheckResult> results;
  for (const auto& [name, core] : all_cores())
    for (auto& res : compare(name + ", 2 groups vs 4 repeated", core(grouped), core(per_head), 1e-12))
      results.push_back(res);
  return all_of(results);
}

// Invariant 3: perturbing x, dt, B, C at positions >= t0 leaves y[:t0] bitwise unchanged,
// in float64 and float32, for t0 inside a chunk, at a chunk boundary and near the end
// (T = 100 is not a multiple of 16 or 64, so the padding is exercised too).
CheckResult core_causality_exact(uint64_t seed) {
  const int64_t T = 100;
  double worst = 0.0;
  std::string where = "y[:t0] bitwise unchanged for every core, float64 and float32, t0 in {1, 37, 64, 99}";
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto in = CoreInputs::random(T, seed, /*with_state=*/true).to(dtype);
    for (const auto& [name, core] : all_cores()) {
      auto y = core(in).y;
      for (int64_t t0 : {1, 37, 64, 99}) {
        auto perturbed = in;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + t0);
        auto disturb = [&](const Tensor& t, bool positive) {
          auto noise = torch::empty(t.slice(1, t0, T).sizes(), torch::kFloat64).normal_(0, 3, gen).to(dtype);
          auto out = t.clone();
          out.slice(1, t0, T).add_(positive ? noise.abs() : noise);
          return out;
        };
        perturbed.x = disturb(in.x, false);
        perturbed.dt = disturb(in.dt, true);
        perturbed.B = disturb(in.B, false);
        perturbed.C = disturb(in.C, false);
        auto before = y.slice(1, 0, t0), after = core(perturbed).y.slice(1, 0, t0);
        if (!torch::equal(before, after)) {
          double diff = (before - after).abs().max().item<double>();
          if (diff > worst)
            worst = diff, where = name + " " + c10::toString(dtype) + ", t0=" + std::to_string(t0) +
                                  ": an earlier output changed";
        }
      }
    }
  }
  return CheckResult{worst == 0.0, worst, 0.0, where + " (max |change| " + c10::str(worst) + ", tolerance 0)"};
}

// §9: chunked in float32 vs recurrent in float64 (L=200, h=4, p=16, n=16, g=2, with S0):
// scaled max error <= 1e-4 and relative RMS <= 1e-5.
CheckResult chunked_float32_vs_recurrent_float64(uint64_t seed) {
  auto in = CoreInputs::random(200, seed, /*with_state=*/true);
  auto want = ssd_recurrent(in.x, in.dt, in.A, in.B, in.C, in.initial_state);
  auto in32 = in.to(torch::kFloat32);
  std::vector<CheckResult> results;
  for (int64_t chunk : {16, 64}) {
    auto got = chunked_core(chunk)(in32);
    auto where = "chunked Q=" + std::to_string(chunk) + " float32";
    for (auto& r : compare(where, got, want, 1e-4)) results.push_back(r);
    auto rms = [&](const std::string& what, const Tensor& a, const Tensor& b) {
      double e = relative_rms(a, b);
      return CheckResult{e <= 1e-5, e, 1e-5, where + " " + what + ": relative RMS " + c10::str(e) + " (tolerance 1e-05)"};
    };
    results.push_back(rms("y", got.y, want.y));
    results.push_back(rms("final state", got.final_state, want.final_state));
  }
  return all_of(results);
}

}  // namespace

std::vector<Check> family_checks() {
  return {
      {"cores_equal_quadratic", cores_equal_quadratic},
      {"blocks_equal_on_same_weights", blocks_equal_on_same_weights},
      {"state_passing", state_passing},
      {"groups_equal_repeated_heads", groups_equal_repeated_heads},
      {"core_causality_exact", core_causality_exact},
      {"chunked_float32_vs_recurrent_float64", chunked_float32_vs_recurrent_float64},
      {"segsum_fused_equals_reference", segsum_fused_equals_reference},
  };
}

}  // namespace mixlab::mamba
