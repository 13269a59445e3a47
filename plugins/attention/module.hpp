// The attention mixer around one core (Reference, Flash or Sdpa): project to
// heads with RoPE, attend, project out. Decode keeps a KvCache and attends
// with the naive form, which takes key positions in any order.
#pragma once

#include "kv_cache.hpp"
#include "reference.hpp"

namespace mixlab::attention {

template <class Core>
class Attention : public Module {
 public:
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_MIXER, "attention", Core::impl, Core::version, Core::description};
    i.caps |= MIXLAB_CAP_DECODE;
    // Without impl = "...", an experiment gets LibTorch's fused kernels.
    if (std::string_view(Core::impl) == "sdpa") i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }

  explicit Attention(const CreateArgs& args) : cfg_(AttentionConfig::parse(args)) {}

  const AttentionConfig& config() const { return cfg_; }

  std::vector<ParamSpec> params() const override { return cfg_.params(); }

  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    return {forward_at(x, p, torch::arange(x.size(1), x.options().dtype(torch::kFloat64)))};
  }

  // The forward with RoPE at float64 `positions` (T,); masking still follows
  // token order. The family checks shift and scale positions through it.
  torch::Tensor forward_at(const torch::Tensor& x, const Params& p, const torch::Tensor& positions) const {
    return merge(cfg_, Core::attend(project(cfg_, x, p, positions), cfg_), p);
  }

  std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    return std::make_unique<KvCache>(cfg_, batch, options);
  }

  torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const override {
    auto& cache = dynamic_cast<KvCache&>(state);
    auto pos = torch::arange(cache.length, cache.length + x.size(1), x.options().dtype(torch::kLong));
    auto h = project(cfg_, x, p, pos.to(torch::kFloat64));
    auto [k, v, k_pos] = cache.with(h.k, h.v, pos);
    auto o = attend_naive(h.q, k, v, pos, k_pos, cfg_.window, cfg_.softmax_scale);
    cache.append(h.k, h.v, pos);
    return merge(cfg_, o, p);
  }

  // Per token at seq_len: the projections plus 4 * head_dim FLOPs per head
  // and visible key (scores and weighted sum), averaged over positions.
  Cost cost(int64_t seq_len, int32_t dtype_bytes) const override {
    const double T = static_cast<double>(seq_len);
    double visible_keys = (T + 1) / 2;
    if (cfg_.window && *cfg_.window < seq_len) {
      const double W = static_cast<double>(*cfg_.window);
      visible_keys = (W * (W + 1) / 2 + (T - W) * W) / T;
    }
    double projections = 0;
    for (const auto& spec : params())
      if (spec.shape.size() == 2) projections += static_cast<double>(spec.shape[0] * spec.shape[1]);
    Cost c;
    c.forward_flops = 2 * projections + 4.0 * cfg_.head_dim * cfg_.n_heads * visible_keys;
    const double cached = cfg_.window ? std::min<double>(T, *cfg_.window) : T;
    c.state_bytes = 2.0 * cfg_.n_kv_heads * cfg_.head_dim * cached * dtype_bytes;
    c.state_grows = !cfg_.window;
    // explain compares the cache with multi-head attention of the same heads.
    c.kv_head_bytes_per_token = 2.0 * cfg_.head_dim * dtype_bytes;
    c.attention_heads = static_cast<int32_t>(cfg_.n_heads);
    return c;
  }

 private:
  AttentionConfig cfg_;
};

}  // namespace mixlab::attention
