// The implicit long filters h_0..h_{N-2}: a sine-activated MLP of a fixed
// positional encoding of t, times an exponential decay window (safari's
// HyenaFilter.filter).
#pragma once

#include "common.hpp"

#include <numbers>

namespace mixlab::hyena {

class ImplicitFilter {
 public:
  explicit ImplicitFilter(const HyenaConfig& cfg) : cfg_(cfg) {
    // Built once for l_max in float64 and sliced to [:T], so the filter of a
    // prefix is a prefix of the filter (prefix consistency). Not a parameter.
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    t_norm_ = torch::linspace(0.0, 1.0, cfg.l_max, f64).unsqueeze(1);  // (l_max, 1)
    const int64_t bands = (cfg.emb_dim - 1) / 2;
    auto w = torch::arange(cfg.l_max, f64).unsqueeze(1) * (2.0 * std::numbers::pi / static_cast<double>(cfg.l_max));
    auto f = torch::linspace(1e-4, static_cast<double>(bands - 1), bands, f64).unsqueeze(0);
    // z = [t, Re exp(-i f w), Im exp(-i f w)]
    encoding_ = torch::cat({t_norm_, torch::cos(f * w), -torch::sin(f * w)}, 1);  // (l_max, emb_dim)
    // Decay rates |delta_c| from ln(target)/slow to ln(target)/fast across the channels.
    double target = std::log(cfg.decay_target);
    decay_rates_ = torch::linspace(target / cfg.slow_decay_pct, target / cfg.fast_decay_pct, cfg.filter_channels(), f64)
                       .abs()
                       .unsqueeze(0);  // (1, channels)
  }

  // The filters for positions [0, T): (order-1, d_model, T); h[o] is used by stage o.
  torch::Tensor operator()(const Params& p, int64_t T, const torch::TensorOptions& options) const {
    if (T > cfg_.l_max)
      throw Error(MIXLAB_INVALID_ARGUMENT,
                  "sequence length " + std::to_string(T) + " exceeds l_max " + std::to_string(cfg_.l_max));
    const auto& freq = p[HyenaConfig::sin_freq_name()];
    auto h = encoding_.slice(0, 0, T).to(options);
    for (int64_t i = 0; i + 1 < cfg_.n_mlp_linears(); ++i) {
      auto name = HyenaConfig::mlp_linear(i);
      h = torch::sin(freq * torch::linear(h, p[name + ".weight"], p[name + ".bias"]));
    }
    h = torch::linear(h, p[HyenaConfig::mlp_linear(cfg_.n_mlp_linears() - 1) + ".weight"]);  // (T, channels)
    if (cfg_.modulate) {
      auto window = torch::exp(-t_norm_.slice(0, 0, T) * decay_rates_) + cfg_.modulation_shift;
      h = h * window.to(options);
    }
    // Channel c = o * d_model + j belongs to stage o, as safari's 'l (o d) -> o d l'.
    return h.t().reshape({cfg_.order - 1, cfg_.d_model, T});
  }

 private:
  HyenaConfig cfg_;
  torch::Tensor t_norm_, encoding_, decay_rates_;
};

}  // namespace mixlab::hyena
