// The MLA mixer around one core (Naive or Absorbed): project to queries and
// latent keys, attend, project out. Decode keeps a LatentCache (latent and
// rope key only) and attends over it with the same core.
#pragma once

#include "latent_cache.hpp"

namespace mixlab::mla {

template <class Core>
class Mla : public Module {
 public:
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_MIXER, "mla", Core::impl, "1.0.0", Core::description};
    i.caps |= MIXLAB_CAP_DECODE;
    // Without impl = "...", an experiment gets the form that never forms per-head K/V.
    if (std::string_view(Core::impl) == "absorbed") i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }

  explicit Mla(const CreateArgs& args) : cfg_(MlaConfig::parse(args)) {}

  const MlaConfig& config() const { return cfg_; }

  std::vector<ParamSpec> params() const override { return cfg_.params(); }

  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    return {forward_at(x, p, torch::arange(x.size(1), x.options().dtype(torch::kLong)))};
  }

  // The forward with RoPE at int64 `positions` (T,); the family checks shift them.
  torch::Tensor forward_at(const torch::Tensor& x, const Params& p, const torch::Tensor& positions) const {
    auto [q, kv] = project(cfg_, x, p, positions.to(torch::kFloat64));
    return merge(cfg_, Core::attend(cfg_, p, q, kv, positions, positions), p);
  }

  std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    return std::make_unique<LatentCache>(cfg_, batch, options);
  }

  torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const override {
    auto& cache = dynamic_cast<LatentCache&>(state);
    auto pos = torch::arange(cache.length, cache.length + x.size(1), x.options().dtype(torch::kLong));
    auto [q, fresh] = project(cfg_, x, p, pos.to(torch::kFloat64));
    auto keys = cache.with(fresh);
    auto k_pos = torch::arange(keys.c_kv.size(1), pos.options());
    auto o = Core::attend(cfg_, p, q, keys, pos, k_pos);
    cache.append(fresh);
    return merge(cfg_, o, p);
  }

  // Per token at seq_len: every projection once (the absorbed form applies
  // W_UK and W_UV to queries and outputs instead of keys and values: the same
  // count), plus the core's FLOPs per head and visible key, averaged over
  // positions. The decode state is the latent cache; explain compares it with
  // multi-head attention of the same heads, whose kv head keeps a (d_n + d_r)
  // key and a d_v value per token.
  Cost cost(int64_t seq_len, int32_t dtype_bytes) const override {
    const double T = static_cast<double>(seq_len);
    double projections = 0;
    for (const auto& spec : params())
      if (spec.shape.size() == 2) projections += static_cast<double>(spec.shape[0] * spec.shape[1]);
    Cost c;
    c.forward_flops = 2 * projections + Core::flops_per_key_and_head(cfg_) * cfg_.n_heads * (T + 1) / 2;
    c.state_bytes = static_cast<double>(cfg_.latent_dim + cfg_.rope_head_dim) * T * dtype_bytes;
    c.state_grows = true;
    c.kv_head_bytes_per_token = static_cast<double>(cfg_.qk_head_dim() + cfg_.v_head_dim) * dtype_bytes;
    c.attention_heads = static_cast<int32_t>(cfg_.n_heads);
    return c;
  }

 private:
  MlaConfig cfg_;
};

}  // namespace mixlab::mla
