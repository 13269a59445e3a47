// Hyena: the config schema and the ONE parameter layout that `direct` and
// `fft` share, so the two can be A/B-swapped on the same weights.
//
// Parameter names follow the state_dict of safari's HyenaOperator
// (HazyResearch/safari, standalone_hyena.py), so a Python user can load our
// weights into it key by key (see README.md for the two differences).
#pragma once

#include <mixlab/plugin.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace mixlab::hyena {

struct HyenaConfig {
  int64_t d_model;
  int64_t l_max;               // longest sequence; the positional encoding is built for it
  int64_t order;               // N: N-1 long convolutions, N+1 projected streams
  int64_t filter_order;        // width of the implicit-filter MLP
  int64_t emb_dim;             // positional-encoding features: t and (emb_dim-1)/2 complex bands
  int64_t num_inner_mlps;      // hidden Linear+Sin blocks of the implicit filter
  int64_t short_filter_order;  // kernel size of the depthwise causal short convolution
  double sin_freq;             // initial frequency of the Sin activation
  bool modulate;               // exponential decay window on the filters
  double fast_decay_pct;       // the fastest channel decays to decay_target at t = fast_decay_pct
  double slow_decay_pct;       // the slowest channel decays to decay_target at t = slow_decay_pct
  double decay_target;
  double modulation_shift;     // added to the decay window

  static HyenaConfig parse(const CreateArgs& args) {
    const Config& c = args.config;
    HyenaConfig h{};
    h.d_model = args.d_model;
    h.l_max = c.get_int("l_max", args.max_seq_len);
    h.order = c.get_int("order", 2, 2);
    h.filter_order = c.get_int("filter_order", 64);
    h.emb_dim = c.get_int("emb_dim", 3, 3);
    if (h.emb_dim % 2 == 0)
      throw config_error("emb_dim", "must be odd (t plus (emb_dim-1)/2 complex bands), got " + std::to_string(h.emb_dim));
    h.num_inner_mlps = c.get_int("num_inner_mlps", 2, 0);
    h.short_filter_order = c.get_int("short_filter_order", 3);
    h.sin_freq = positive(c, "sin_freq", 1.0);
    h.modulate = c.get<bool>("modulate", true);
    h.fast_decay_pct = positive(c, "fast_decay_pct", 0.3);
    h.slow_decay_pct = positive(c, "slow_decay_pct", 1.5);
    h.decay_target = c.get<double>("decay_target", 1e-2);
    if (!(h.decay_target > 0.0 && h.decay_target < 1.0))
      throw config_error("decay_target", "must be in (0, 1), got " + std::to_string(h.decay_target));
    h.modulation_shift = c.get<double>("modulation_shift", 0.0);
    if (!std::isfinite(h.modulation_shift))
      throw config_error("modulation_shift", "must be finite, got " + std::to_string(h.modulation_shift));
    return h;
  }

  int64_t inner_width() const { return (order + 1) * d_model; }      // in_proj output channels
  int64_t filter_channels() const { return (order - 1) * d_model; }  // implicit-filter output channels

  // ---------------------------------------------------------------- parameter names

  static std::string mlp_layer(int64_t index) { return "filter_fn.implicit_filter." + std::to_string(index); }
  // The Sin modules of safari's nn.Sequential are one module: its frequency appears once, at index 1.
  static std::string sin_freq_name() { return mlp_layer(1) + ".freq"; }
  // Linear layers sit at the even indices: 0 (from the encoding), 2, 4, ... (inner), last (to channels).
  static std::string mlp_linear(int64_t i) { return mlp_layer(2 * i); }
  int64_t n_mlp_linears() const { return num_inner_mlps + 2; }

  std::vector<ParamSpec> param_specs() const {
    const int64_t d = d_model, C = inner_width(), F = filter_order, K = short_filter_order;
    // PyTorch's default Linear/Conv1d init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in safari:
    // the implicit filter needs O(1) pre-activations for its Sin layers to shape anything.
    auto torch_default = [](std::string name, std::vector<int64_t> shape, int64_t fan_in, std::string desc) {
      double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      return ParamSpec::uniform(std::move(name), std::move(shape), std::move(desc), -bound, bound);
    };
    std::vector<ParamSpec> p{
        ParamSpec::normal("in_proj.weight", {C, d}, "(order+1)d x d: projects to x_0..x_{N-1}, v (in that order)"),
        ParamSpec::zeros("in_proj.bias", {C}, "bias of in_proj"),
        torch_default("short_filter.weight", {C, 1, K}, K, "depthwise causal short convolution (Conv1d layout)"),
        torch_default("short_filter.bias", {C}, K, "bias of the short convolution"),
    };
    for (int64_t i = 0; i + 1 < n_mlp_linears(); ++i) {
      int64_t fan_in = i == 0 ? emb_dim : F;
      std::string where = i == 0 ? "positional encoding -> filter_order" : "filter_order -> filter_order";
      p.push_back(torch_default(mlp_linear(i) + ".weight", {F, fan_in}, fan_in, "implicit filter: " + where)
                      .no_weight_decay());
      p.push_back(torch_default(mlp_linear(i) + ".bias", {F}, fan_in, "implicit filter: bias of " + where)
                      .no_weight_decay());
      if (i == 0)
        p.push_back(ParamSpec{sin_freq_name(), {1, F}, "frequency w of every Sin(x) = sin(w x) of this layer's filter",
                              MIXLAB_INIT_CONSTANT, sin_freq, 0.0, MIXLAB_PARAM_NO_WEIGHT_DECAY});
    }
    p.push_back(torch_default(mlp_linear(n_mlp_linears() - 1) + ".weight", {filter_channels(), F}, F,
                              "implicit filter: filter_order -> (order-1)d channels, no bias")
                    .no_weight_decay());
    p.push_back(ParamSpec::normal("filter_fn.bias", {filter_channels()},
                                  "(order-1)d: the skip term D of each long convolution, y = h*u + D u", 1.0)
                    .no_weight_decay());
    p.push_back(ParamSpec::normal("out_proj.weight", {d, d}, "d x d output projection"));
    p.push_back(ParamSpec::zeros("out_proj.bias", {d}, "bias of out_proj"));
    return p;
  }

 private:
  static double positive(const Config& c, const std::string& key, double fallback) {
    double v = c.get<double>(key, fallback);
    if (!(v > 0.0) || !std::isfinite(v)) throw config_error(key, "must be a positive number, got " + std::to_string(v));
    return v;
  }
};

}  // namespace mixlab::hyena
