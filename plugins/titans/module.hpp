// The Titans memory layer around one core (Naive or Chunked): prepend the
// persistent tokens, project, let the memory learn and retrieve piece by piece
// (pieces never cross a chunk boundary, so a chunk's gradients are all taken at
// its start weights), drop the persistent tokens' outputs, norm, gate, project
// out. forward and decode run the same driver: forward from a fresh state over
// the whole sequence, step from the state the previous steps left.
#pragma once

#include "state.hpp"

namespace mixlab::titans {

template <class Core>
class Titans : public Module {
 public:
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_MIXER, "titans", Core::impl, "1.0.0", Core::description};
    i.caps |= MIXLAB_CAP_DECODE;
    if (std::string_view(Core::impl) == "chunked") i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }

  explicit Titans(const CreateArgs& args) : cfg_(TitansConfig::parse(args)) {}

  const TitansConfig& config() const { return cfg_; }

  std::vector<ParamSpec> params() const override { return cfg_.params(); }

  // b_gates: α starts at σ(-4) ≈ 0.018 (keep ~98% of the memory per token), η and
  // θ at σ(0) = 0.5 (θ = inner_lr / 2).
  void init_param(const std::string& name, torch::Tensor& param, at::Generator&) const override {
    if (name != "b_gates") throw Error(MIXLAB_INTERNAL, "titans: no plugin init for " + name);
    param.zero_();
    param.narrow(0, 0, cfg_.n_heads).fill_(-4.0);
  }

  // Training always updates the memory; evaluation only with update_at_inference.
  Output forward(const torch::Tensor& x, const Params& p, const Call& call) const override {
    MemoryState state;
    return {mix(state, x, p, call.training || cfg_.update_at_inference)};
  }

  std::unique_ptr<State> new_state(int64_t, const torch::TensorOptions&) const override {
    return std::make_unique<MemoryState>();  // M_0 comes from the parameters at the first step
  }

  // Generation is outside training: the memory learns only with update_at_inference.
  torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const override {
    return mix(dynamic_cast<MemoryState&>(state), x, p, cfg_.update_at_inference);
  }

  // Per token: every projection once, plus the core's memory FLOPs per head.
  // The decode state is the memory's weights, momentum and chunk-start weights.
  Cost cost(int64_t, int32_t dtype_bytes) const override {
    double projections = 0;
    for (const auto& spec : params())
      if (spec.shape.size() == 2 && spec.name != "persistent")
        projections += static_cast<double>(spec.shape[0] * spec.shape[1]);
    Cost c;
    c.forward_flops = 2 * projections + Core::flops_per_token_and_head(cfg_) * static_cast<double>(cfg_.n_heads);
    c.state_bytes = 3.0 * static_cast<double>(cfg_.n_heads * cfg_.memory_size()) * dtype_bytes;
    return c;
  }

 private:
  // x (B, T, d_model) continuing `state`; returns y (B, T, d_model).
  torch::Tensor mix(MemoryState& state, const torch::Tensor& x, const Params& p, bool update) const {
    const int64_t B = x.size(0), T = x.size(1);
    auto dtype = compute_dtype(x.scalar_type());
    const bool first = !state.started();
    if (first) state = MemoryState::initial(cfg_, p, B, dtype);
    const int64_t prefix = first ? cfg_.persistent_tokens : 0;
    auto x_ext = prefix > 0 ? torch::cat({p["persistent"].unsqueeze(0).expand({B, prefix, cfg_.d_model}), x}, 1) : x;
    auto tokens = project(cfg_, x_ext, p);
    torch::Tensor o;
    if (update) {
      o = learn(state, tokens).narrow(2, prefix, T);
    } else {
      // The persistent tokens shape the initial memory; the data only reads it.
      if (prefix > 0) learn(state, tokens.slice(0, prefix));
      o = retrieve(state.weights, tokens.q.narrow(2, prefix, T));
    }
    return output(cfg_, o, x, p);
  }

  // The memory learns from `tokens` in pieces cut at the chunk boundaries of x~.
  torch::Tensor learn(MemoryState& state, const Tokens& tokens) const {
    std::vector<torch::Tensor> outs;
    for (int64_t at = 0; at < tokens.size();) {
      const int64_t n = std::min(tokens.size() - at, cfg_.chunk_size - state.tokens % cfg_.chunk_size);
      outs.push_back(Core::scan(cfg_, state, tokens.slice(at, n)));
      at += n;
      state.tokens += n;
      if (state.tokens % cfg_.chunk_size == 0) state.anchor = state.weights;
    }
    return torch::cat(outs, 2);
  }

  TitansConfig cfg_;
};

}  // namespace mixlab::titans
