// Hyena family checks, run by `host conformance` beside the generic ones.
// Each compares against an independent form in float64 with one metric:
// max|a - b| / max(1, max|reference|).
#include "checks.hpp"

#include "fft.hpp"
#include "operator.hpp"

#include <mixlab/testing.hpp>

#include <algorithm>

namespace mixlab::hyena {
namespace {

using testing::decode_in_chunks;
using testing::expect_close;
using testing::scaled_max_error;
using torch::Tensor;

constexpr int64_t kDModel = 16;
constexpr int64_t kLMax = 300;
constexpr double kFloat64Tol = 1e-10;
constexpr double kFloat32Tol = 1e-4;  // mixers-research.md section 9, unit-scale inputs, L <= 512

// Order 2 with the defaults, and order 3 with a wider short filter and no decay window.
const std::vector<std::string>& configs() {
  static const std::vector<std::string> list{
      R"({"filter_order": 16})",
      R"({"order": 3, "filter_order": 16, "short_filter_order": 4, "modulate": false})"};
  return list;
}

template <class LongConv>
Hyena<LongConv> make(const std::string& config) {
  return Hyena<LongConv>(testing::args(kDModel, kLMax, config));
}

Tensor input(int64_t batch, int64_t T, torch::ScalarType dtype) {
  return torch::randn({batch, T, kDModel}, torch::kFloat64).to(dtype);
}

Params cast(const Params& p, torch::ScalarType dtype) {
  std::vector<Tensor> out;
  for (const auto& t : p.tensors()) out.push_back(t.detach().to(dtype));
  return Params(p.names(), std::move(out));
}

// y and the gradients of <w, y> with respect to x and every parameter.
std::vector<Tensor> output_and_grads(const Module& m, const Tensor& x, const Params& p, const Tensor& w) {
  auto xg = x.detach().clone().requires_grad_(true);
  auto pg = testing::with_grad(p);
  auto y = m.forward(xg, pg, {}).y;
  std::vector<Tensor> inputs{xg};
  for (const auto& t : pg.tensors()) inputs.push_back(t);
  auto grads = torch::autograd::grad({(y * w).sum()}, inputs);
  grads.insert(grads.begin(), y.detach());
  return grads;
}

// The causal convolution as an explicit lower-triangular Toeplitz matrix:
// y_t = sum_s K[t, s] u_s with K[t, s] = k_{t-s} for s <= t, else 0.
Tensor toeplitz_conv(const Tensor& u, const Tensor& k) {
  const int64_t T = u.size(-1);
  auto pos = torch::arange(T, torch::kLong);
  auto lag = pos.unsqueeze(1) - pos.unsqueeze(0);                      // (T, T): t - s
  auto matrix = k.index({torch::indexing::Slice(), lag.clamp_min(0)}) * (lag >= 0);  // (C, T, T)
  return torch::einsum("cts,bcs->bct", {matrix, u});
}

// testing::all_of, with the worst comparison (by error / tolerance) named in the message.
CheckResult all_of(const std::vector<CheckResult>& results) {
  auto out = testing::all_of(results);
  if (!out.passed) return out;
  auto ratio = [](const CheckResult& r) { return r.tolerance > 0 ? r.error / r.tolerance : (r.error > 0 ? 1e300 : 0.0); };
  auto worst = std::max_element(results.begin(), results.end(),
                                [&](const CheckResult& a, const CheckResult& b) { return ratio(a) < ratio(b); });
  out.message = std::to_string(results.size()) + " comparisons passed; worst: " + worst->message;
  return out;
}

// ---------------------------------------------------------------- checks

CheckResult fft_equals_direct(uint64_t seed) {
  std::vector<CheckResult> results;
  for (const auto& config : configs()) {
    auto direct = make<DirectConv>(config);
    auto fft = make<FftConv>(config);
    auto p = testing::make_params(direct, torch::kFloat64, seed);
    auto x = input(2, 130, torch::kFloat64);
    auto w = torch::randn_like(x);
    auto ref = output_and_grads(direct, x, p, w);
    auto got = output_and_grads(fft, x, p, w);
    auto names = p.names();
    for (size_t i = 0; i < ref.size(); ++i) {
      std::string what = i == 0 ? "y" : i == 1 ? "grad x" : "grad " + names[i - 2];
      results.push_back(expect_close("float64 " + what + " " + config, scaled_max_error(got[i], ref[i]), kFloat64Tol));
    }
    torch::NoGradGuard no_grad;
    auto y32 = fft.forward(x.to(torch::kFloat32), cast(p, torch::kFloat32), {}).y;
    results.push_back(expect_close("float32 fft vs float64 direct " + config, scaled_max_error(y32, ref[0]), kFloat32Tol));
  }
  return all_of(results);
}

template <class LongConv>
void prefix_consistency_of(uint64_t seed, std::vector<CheckResult>& results) {
  torch::NoGradGuard no_grad;
  for (const auto& config : configs()) {
    auto m = make<LongConv>(config);
    auto p = testing::make_params(m, torch::kFloat64, seed);
    auto x = input(2, 200, torch::kFloat64);
    Tensor y = m.forward(x, p, {}).y;
    for (int64_t prefix : {1, 63, 130}) {
      Tensor yp = m.forward(x.slice(1, 0, prefix), p, {}).y;
      results.push_back(expect_close(std::string(LongConv::impl) + " T'=" + std::to_string(prefix) + " " + config,
                                     scaled_max_error(yp, y.slice(1, 0, prefix)), kFloat64Tol));
    }
  }
}

CheckResult prefix_consistency(uint64_t seed) {
  std::vector<CheckResult> results;
  prefix_consistency_of<DirectConv>(seed, results);
  prefix_consistency_of<FftConv>(seed, results);
  return all_of(results);
}

// Perturbs positions >= t0 and measures the change of earlier outputs relative
// to max(1, max|y|), in float32 (where FFT leakage is largest).
template <class LongConv>
CheckResult causality_of(uint64_t seed, double bound) {
  torch::NoGradGuard no_grad;
  double worst = 0.0;
  for (const auto& config : configs()) {
    auto m = make<LongConv>(config);
    auto p = cast(testing::make_params(m, torch::kFloat64, seed), torch::kFloat32);
    const int64_t T = 256;
    auto x = input(2, T, torch::kFloat32);
    Tensor y = m.forward(x, p, {}).y;
    double scale = std::max(1.0, y.abs().max().item<double>());
    for (int64_t t0 : {1, 100, 255}) {
      auto xp = x.clone();
      xp.slice(1, t0, T).add_(torch::randn_like(xp.slice(1, t0, T)) * 3.0);
      Tensor before = y.slice(1, 0, t0), after = m.forward(xp, p, {}).y.slice(1, 0, t0);
      worst = std::max(worst, (before - after).abs().max().item<double>() / scale);
    }
  }
  return expect_close(std::string(LongConv::impl) + " float32 T=256, change before the perturbation / max(1, max|y|)",
                      worst, bound);
}

CheckResult causality(uint64_t seed) {
  return all_of({causality_of<DirectConv>(seed, 0.0), causality_of<FftConv>(seed, FftConv::causality_bound)});
}

template <class LongConv>
void step_equals_forward_of(uint64_t seed, std::vector<CheckResult>& results) {
  torch::NoGradGuard no_grad;
  for (const auto& config : configs()) {
    auto m = make<LongConv>(config);
    auto p = testing::make_params(m, torch::kFloat64, seed);
    const int64_t T = 37;
    auto x = input(2, T, torch::kFloat64);
    Tensor y = m.forward(x, p, {}).y;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> splits{
        {"token by token", std::vector<int64_t>(T, 1)}, {"chunks 5,1,14,17", {5, 1, 14, 17}}};
    for (const auto& [how, chunks] : splits)
      results.push_back(expect_close(std::string(LongConv::impl) + " " + how + " " + config,
                                     scaled_max_error(decode_in_chunks(m, x, chunks, p), y), kFloat64Tol));
  }
}

CheckResult step_equals_forward(uint64_t seed) {
  std::vector<CheckResult> results;
  step_equals_forward_of<DirectConv>(seed, results);
  step_equals_forward_of<FftConv>(seed, results);
  return all_of(results);
}

CheckResult fftconv_equals_toeplitz(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto m = make<DirectConv>(configs()[0]);
  auto p = testing::make_params(m, torch::kFloat64, seed);
  const int64_t T = 300;
  auto u = torch::randn({2, kDModel, T}, torch::kFloat64);
  // A trained-looking (decayed) filter and an unmodulated random one, the hard case for float32.
  std::vector<std::pair<std::string, Tensor>> filters{
      {"implicit filter", ImplicitFilter(m.config())(p, T, u.options())[0]},
      {"random filter", torch::randn({kDModel, T}, torch::kFloat64)}};
  std::vector<CheckResult> results;
  for (const auto& [name, k] : filters) {
    auto ref = toeplitz_conv(u, k);
    results.push_back(expect_close("fft float64, " + name, scaled_max_error(causal_conv_fft(u, k), ref), kFloat64Tol));
    results.push_back(expect_close("direct float64, " + name, scaled_max_error(causal_conv_direct(u, k, T), ref), kFloat64Tol));
    auto fft32 = causal_conv_fft(u.to(torch::kFloat32), k.to(torch::kFloat32));
    results.push_back(expect_close("fft float32, " + name, scaled_max_error(fft32, ref), kFloat32Tol));
  }
  return all_of(results);
}

}  // namespace

const std::vector<Check>& family_checks() {
  static const std::vector<Check> list{
      {"fft_equals_direct", fft_equals_direct},
      {"prefix_consistency", prefix_consistency},
      {"causality", causality},
      {"step_equals_forward", step_equals_forward},
      {"fftconv_equals_toeplitz", fftconv_equals_toeplitz},
  };
  return list;
}

}  // namespace mixlab::hyena
