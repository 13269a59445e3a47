// mixlab/testing.hpp -- helpers for a plugin's own checks (family invariants).
//
// A check builds modules directly (it runs inside the plugin library), gives
// them parameters from their specs, and compares results with one metric:
// the largest absolute difference scaled by max(1, max|reference|).
#pragma once

#include <mixlab/plugin.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

namespace mixlab::testing {

// Every metric below is NaN-aware: a NaN or infinity in either tensor makes the
// error +infinity, so that `error <= tolerance` fails and std::max keeps it
// (a plain max(|a - b|) would be NaN, and NaN compares false both ways).

// Whether every value of `t` is finite.
inline bool all_finite(const torch::Tensor& t) {
  return t.numel() == 0 || torch::isfinite(t.detach()).all().item<bool>();
}

// `error` with NaN made +infinity, for errors computed by hand (std::max(0.0, NaN) is 0.0).
inline double nan_as_inf(double error) {
  return std::isnan(error) ? std::numeric_limits<double>::infinity() : error;
}

// Largest |a - b| divided by max(1, max|b|): absolute for small values, relative for large.
inline double scaled_max_error(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.detach().to(torch::kCPU, torch::kFloat64);
  auto b64 = b.detach().to(torch::kCPU, torch::kFloat64);
  if (a64.sizes() != b64.sizes() || !all_finite(a64) || !all_finite(b64)) return std::numeric_limits<double>::infinity();
  if (a64.numel() == 0) return 0.0;
  double scale = std::max(1.0, b64.abs().max().item<double>());
  return (a64 - b64).abs().max().item<double>() / scale;
}

// rms(a - b) / (rms(b) + 1e-12), the metric flash-linear-attention uses.
inline double relative_rms(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.detach().to(torch::kCPU, torch::kFloat64);
  auto b64 = b.detach().to(torch::kCPU, torch::kFloat64);
  if (a64.sizes() != b64.sizes() || !all_finite(a64) || !all_finite(b64)) return std::numeric_limits<double>::infinity();
  return (a64 - b64).pow(2).mean().sqrt().item<double>() / (b64.pow(2).mean().sqrt().item<double>() + 1e-12);
}

// "WHAT: scaled max error E (tolerance T)", or that non-finite values were compared.
inline std::string describe_error(const std::string& what, const std::string& metric, double error, double tolerance) {
  std::ostringstream msg;
  if (std::isfinite(error)) msg << what << ": " << metric << " " << error << " (tolerance " << tolerance << ")";
  else msg << what << ": NaN or infinity in the compared values or their shapes differ (tolerance " << tolerance << ")";
  return msg.str();
}

// Parameters for `module` from its specs, deterministic from `seed`. NORMAL
// specs without a std get `default_std`.
inline Params make_params(const Module& module, torch::ScalarType dtype, uint64_t seed, double default_std = 0.2) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  for (const auto& spec : module.params()) {
    auto t = torch::empty(spec.shape, torch::kFloat64);
    switch (spec.init) {
      case MIXLAB_INIT_ZEROS: t.zero_(); break;
      case MIXLAB_INIT_ONES: t.fill_(1.0); break;
      case MIXLAB_INIT_CONSTANT: t.fill_(spec.a); break;
      case MIXLAB_INIT_NORMAL: t.normal_(spec.a, spec.b > 0 ? spec.b : default_std, gen); break;
      case MIXLAB_INIT_UNIFORM: t.uniform_(spec.a, spec.b, gen); break;
      case MIXLAB_INIT_PLUGIN: module.init_param(spec.name, t, gen); break;
    }
    names.push_back(spec.name);
    tensors.push_back(t.to(dtype));
  }
  return Params(std::move(names), std::move(tensors));
}

// The same parameters, detached and set to require grad, so a check can call backward.
inline Params with_grad(const Params& p) {
  std::vector<torch::Tensor> tensors;
  for (const auto& t : p.tensors()) tensors.push_back(t.detach().clone().requires_grad_(true));
  return Params(p.names(), std::move(tensors));
}

inline CreateArgs args(int64_t d_model, int64_t max_seq_len, const std::string& config_json) {
  return CreateArgs{d_model, max_seq_len, Config(config_json)};
}

// `module`'s decode of x (B, T, d) in chunks of the given sizes (they sum to T), the chunks'
// outputs concatenated: what a check compares with the forward. Token by token is
// std::vector<int64_t>(T, 1); uneven chunks test that a step continues where the last ended.
inline torch::Tensor decode_in_chunks(const Module& module, const torch::Tensor& x, const std::vector<int64_t>& chunks,
                                      const Params& params) {
  auto state = module.new_state(x.size(0), x.options());
  std::vector<torch::Tensor> outs;
  int64_t at = 0;
  for (int64_t n : chunks) {
    outs.push_back(module.step(*state, x.narrow(1, at, n), params));
    at += n;
  }
  return torch::cat(outs, 1);
}

// Pass when error <= tolerance (never for NaN or infinity); the message names what was compared.
inline CheckResult expect_close(const std::string& what, double error, double tolerance) {
  return CheckResult{error <= tolerance, error, tolerance, describe_error(what, "scaled max error", error, tolerance)};
}

// Combine several results: passes when all pass; reports the worst ratio error/tolerance.
inline CheckResult all_of(const std::vector<CheckResult>& results) {
  CheckResult out{true, 0.0, 0.0, ""};
  double worst = -1;
  for (const auto& r : results) {
    out.passed = out.passed && r.passed;
    double ratio = nan_as_inf(r.tolerance > 0 ? r.error / r.tolerance : (r.error > 0 ? 1e300 : 0));
    if (ratio > worst) worst = ratio, out.error = r.error, out.tolerance = r.tolerance;
    if (!r.passed || results.size() == 1) out.message += (out.message.empty() ? "" : "; ") + r.message;
  }
  if (out.passed && results.size() > 1) {
    std::ostringstream msg;
    msg << results.size() << " comparisons passed; worst: " << out.error << " (tolerance " << out.tolerance << ")";
    out.message = msg.str();
  }
  return out;
}

}  // namespace mixlab::testing
