// The Hyena order-N operator (safari's HyenaOperator), generic in how the long
// convolution is computed (DirectConv or FftConv), plus its decode step.
//
//   u = short_conv(in_proj(x)) split into x_0 .. x_{N-1}, v
//   for o = 0 .. N-2:  w = v * x_{N-1-o};  v = h_o * w + D_o w   (causal, length T)
//   y = out_proj(v * x_0)
#pragma once

#include "direct.hpp"
#include "implicit_filter.hpp"

#include <functional>

namespace mixlab::hyena {

// Decode state: everything the next tokens read from the past.
struct HyenaState : State {
  int64_t seen = 0;                  // tokens consumed so far
  torch::Tensor short_tail;          // (B, (N+1)d, K-1): last in_proj outputs, for the short convolution
  std::vector<torch::Tensor> gated;  // per stage (B, d, seen): its inputs w so far (the convolution history)
};

template <class LongConv>
class Hyena final : public Module {
 public:
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_MIXER, "hyena", LongConv::impl, "1.0.0", LongConv::description};
    i.caps |= MIXLAB_CAP_DECODE;
    // Without impl = "...", an experiment gets the O(T log T) convolution.
    if (std::string_view(LongConv::impl) == "fft") i.caps |= MIXLAB_CAP_PREFERRED;
    i.causality_bound = LongConv::causality_bound;
    return i;
  }

  explicit Hyena(const CreateArgs& args) : cfg_(HyenaConfig::parse(args)), filter_(cfg_) {}

  const HyenaConfig& config() const { return cfg_; }
  std::vector<ParamSpec> params() const override { return cfg_.param_specs(); }

  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    const int64_t T = x.size(1);
    auto k = filter_(p, T, x.options());
    auto padded = torch::constant_pad_nd(project(x, p), {cfg_.short_filter_order - 1, 0});
    return {mix(short_conv(padded, p), p, [&](int64_t o, const torch::Tensor& w) { return LongConv::apply(w, k[o]); })};
  }

  std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    auto s = std::make_unique<HyenaState>();
    s->short_tail = torch::zeros({batch, cfg_.inner_width(), cfg_.short_filter_order - 1}, options);
    for (int64_t o = 0; o + 1 < cfg_.order; ++o) s->gated.push_back(torch::zeros({batch, cfg_.d_model, 0}, options));
    return s;
  }

  // Continues the sequence with x (B, n, d): the same operator, with each long
  // convolution evaluated directly over the cached history for the n new
  // positions (O(n * seen) per channel; both implementations use it).
  torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const override {
    auto& s = dynamic_cast<HyenaState&>(state);
    const int64_t n = x.size(1), L = s.seen + n;
    auto k = filter_(p, L, x.options());
    auto with_tail = torch::cat({s.short_tail, project(x, p)}, 2);
    auto y = mix(short_conv(with_tail, p), p, [&](int64_t o, const torch::Tensor& w) {
      s.gated[o] = torch::cat({s.gated[o], w}, 2);
      return causal_conv_direct(s.gated[o], k[o], n);
    });
    s.short_tail = with_tail.slice(2, with_tail.size(2) - (cfg_.short_filter_order - 1)).clone();
    s.seen = L;
    return y;
  }

  Cost cost(int64_t seq_len, int32_t dtype_bytes) const override {
    const double d = static_cast<double>(cfg_.d_model), C = static_cast<double>(cfg_.inner_width());
    const double F = static_cast<double>(cfg_.filter_order), stages = static_cast<double>(cfg_.order - 1);
    Cost c;
    double projections = 2 * d * C + 2 * d * d;
    double short_conv = 2 * C * static_cast<double>(cfg_.short_filter_order);
    // The implicit filter is evaluated once per position of the sequence.
    double filter_mlp = 2 * F * (static_cast<double>(cfg_.emb_dim) + static_cast<double>(cfg_.num_inner_mlps) * F +
                                 stages * d);
    double long_convs = stages * d * LongConv::flops_per_channel(seq_len);
    c.forward_flops = projections + short_conv + filter_mlp + long_convs;
    // The gated inputs of every stage for the whole context, plus the short-convolution tail.
    c.state_bytes = (stages * d * static_cast<double>(seq_len) + C * static_cast<double>(cfg_.short_filter_order - 1)) *
                    static_cast<double>(dtype_bytes);
    c.state_grows = true;
    return c;
  }

 private:
  // in_proj, channels first: (B, T, d) -> (B, (N+1)d, T).
  torch::Tensor project(const torch::Tensor& x, const Params& p) const {
    return torch::linear(x, p["in_proj.weight"], p["in_proj.bias"]).transpose(1, 2);
  }

  // Depthwise causal short convolution of an input already carrying K-1
  // positions of left context (zeros at the start of a sequence): n+K-1 -> n.
  torch::Tensor short_conv(const torch::Tensor& padded, const Params& p) const {
    return torch::nn::functional::conv1d(
        padded, p["short_filter.weight"],
        torch::nn::functional::Conv1dFuncOptions().bias(p["short_filter.bias"]).groups(cfg_.inner_width()));
  }

  // The gated recurrence and out_proj; long_conv(o, w) is stage o's causal convolution h_o * w.
  torch::Tensor mix(const torch::Tensor& u, const Params& p,
                    const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& long_conv) const {
    const int64_t N = cfg_.order;
    auto streams = u.split(cfg_.d_model, 1);  // x_0 .. x_{N-1}, v
    auto skip = p["filter_fn.bias"].view({N - 1, cfg_.d_model, 1});
    auto v = streams[N];
    for (int64_t o = 0; o + 1 < N; ++o) {
      auto w = v * streams[N - 1 - o];
      v = long_conv(o, w) + skip[o] * w;
    }
    return torch::linear((v * streams[0]).transpose(1, 2), p["out_proj.weight"], p["out_proj.bias"]);
  }

  HyenaConfig cfg_;
  ImplicitFilter filter_;
};

}  // namespace mixlab::hyena
