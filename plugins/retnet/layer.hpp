// The RetNet mixer as a mixlab::Module, for any retention core (Parallel,
// Recurrent, Chunkwise): projections and rotation, the core, group norm,
// gate, output projection. Forward and decode share one path; decode keeps
// the (d_k, d_v) state per head and the position, constant in T.
#pragma once

#include "common.hpp"

namespace mixlab::retnet {

struct DecodeState : State {
  Tensor state;          // (B, H, d_k, d_v) in the compute dtype
  int64_t position = 0;  // tokens consumed so far (the rotation offset)
};

template <class Core>
class Retention : public Module {
 public:
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_MIXER, "retnet", Core::name, "1.0.0", Core::description};
    i.caps |= MIXLAB_CAP_DECODE;
    // Without impl = "...", an experiment gets the form that trains in linear memory.
    if (std::string_view(Core::name) == "chunkwise") i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }

  explicit Retention(const CreateArgs& args) : layout_(args) {}

  const Layout& layout() const { return layout_; }

  std::vector<ParamSpec> params() const override { return layout_.params(); }

  Output forward(const Tensor& x, const Params& p, const Call&) const override {
    return {run(x, p, 0, Tensor()).first};
  }

  std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    const auto& s = layout_.settings();
    auto st = std::make_unique<DecodeState>();
    st->state = torch::zeros({batch, s.n_heads, s.key_head_dim, s.value_head_dim},
                             options.dtype(compute_dtype(options.dtype().toScalarType())));
    return st;
  }

  Tensor step(State& state, const Tensor& x, const Params& p) const override {
    auto& st = static_cast<DecodeState&>(state);
    auto [y, next] = run(x, p, st.position, st.state);
    st.state = next;
    st.position += x.size(1);
    return y;
  }

  Cost cost(int64_t seq_len, int32_t dtype_bytes) const override {
    const auto& s = layout_.settings();
    auto d = static_cast<double>(s.d_model), dv = static_cast<double>(s.value_dim);
    double projections = 2.0 * d * (2.0 * d + 2.0 * dv) + 2.0 * dv * d;
    double core = static_cast<double>(s.n_heads) *
                  Core::flops_per_token(seq_len, s.chunk_size, s.key_head_dim, s.value_head_dim);
    Cost c;
    c.forward_flops = projections + core;
    // The state is kept in the compute dtype (float32 for 16-bit inputs).
    c.state_bytes = static_cast<double>(s.n_heads * s.key_head_dim * s.value_head_dim) * std::max(dtype_bytes, 4);
    c.state_grows = false;
    return c;
  }

  // The whole layer from positions offset.. with the core started at `initial_state`
  // (undefined: zeros); returns y and the state after the last token.
  std::pair<Tensor, Tensor> run(const Tensor& x, const Params& p, int64_t offset, const Tensor& initial_state) const {
    auto heads = layout_.project(x, p, offset);
    auto result = Core::run(heads.q, heads.k, heads.v, layout_.log_decay(heads.q.options()), initial_state,
                            layout_.settings().chunk_size);
    return {layout_.output(x, p, result.o), result.state};
  }

 private:
  Layout layout_;
};

}  // namespace mixlab::retnet
