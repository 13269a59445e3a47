// shortconv: a gated short causal convolution mixer (the BaseConv of the
// zoology paper), written by a "third party" against the installed SDK alone.
//
//   y = W_out( (W_gate x) * conv_k(W_in x) ),  conv_k causal and depthwise.
//
// Decode keeps the last k-1 projected inputs.
#include <mixlab/plugin.hpp>

namespace {

class ShortConv : public mixlab::Module {
 public:
  static mixlab::ImplInfo info() {
    mixlab::ImplInfo i{MIXLAB_FAMILY_MIXER, "shortconv", "default", "0.1.0", "gated short causal convolution"};
    i.caps |= MIXLAB_CAP_DECODE;
    return i;
  }

  explicit ShortConv(const mixlab::CreateArgs& args)
      : d_(args.d_model), kernel_(args.config.get_int("kernel", 3)) {}

  std::vector<mixlab::ParamSpec> params() const override {
    return {mixlab::ParamSpec::normal("w_in", {d_, d_}, "input projection (d, d)"),
            mixlab::ParamSpec::normal("w_gate", {d_, d_}, "gate projection (d, d)"),
            mixlab::ParamSpec::normal("conv", {d_, kernel_}, "depthwise filter; column k-1 weighs the current token", 0.5),
            mixlab::ParamSpec::normal("w_out", {d_, d_}, "output projection (d, d)")};
  }

  // Causal depthwise convolution of u (B, d, T + k - 1) with filter (d, k): (B, d, T).
  torch::Tensor depthwise(const torch::Tensor& u, const torch::Tensor& filter) const {
    namespace F = torch::nn::functional;
    return F::conv1d(u, filter.unsqueeze(1), F::Conv1dFuncOptions().groups(d_));
  }

  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call&) const override {
    auto u = torch::linear(x, p["w_in"]).transpose(1, 2);  // (B, d, T)
    auto padded = torch::constant_pad_nd(u, {kernel_ - 1, 0});
    auto conv = depthwise(padded, p["conv"]).transpose(1, 2);
    return {torch::linear(torch::linear(x, p["w_gate"]) * conv, p["w_out"])};
  }

  struct History : mixlab::State {
    torch::Tensor u;  // (B, d, k-1) last projected inputs
  };

  std::unique_ptr<mixlab::State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    auto s = std::make_unique<History>();
    s->u = torch::zeros({batch, d_, kernel_ - 1}, options);
    return s;
  }

  torch::Tensor step(mixlab::State& state, const torch::Tensor& x, const mixlab::Params& p) const override {
    auto& h = static_cast<History&>(state);
    auto u = torch::cat({h.u, torch::linear(x, p["w_in"]).transpose(1, 2)}, 2);
    auto conv = depthwise(u, p["conv"]).transpose(1, 2);
    h.u = u.narrow(2, u.size(2) - (kernel_ - 1), kernel_ - 1).clone();
    return torch::linear(torch::linear(x, p["w_gate"]) * conv, p["w_out"]);
  }

  mixlab::Cost cost(int64_t, int32_t dtype_bytes) const override {
    mixlab::Cost c;
    c.state_bytes = static_cast<double>(d_ * (kernel_ - 1) * dtype_bytes);
    return c;
  }

 private:
  int64_t d_;
  int64_t kernel_;
};

}  // namespace

MIXLAB_PLUGIN(mixlab::impl<ShortConv>())
