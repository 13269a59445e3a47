// `mlp`: the dense position-wise FFN (family ffn).
#pragma once

#include "ffn_math.hpp"

namespace mixlab::ffn {

class Mlp : public Module {
 public:
  static ImplInfo info() {
    return {MIXLAB_FAMILY_FFN, "mlp", "default", "1.1.0",
            "dense FFN: gelu | relu | silu | swiglu | geglu, optional biases"};
  }

  explicit Mlp(const CreateArgs& args)
      : d_(args.d_model),
        activation_(args.config.get_choice("activation", "gelu", activations())),
        hidden_(args.config.get_int("hidden", default_hidden(d_, activation_))),
        bias_(args.config.get<bool>("bias", false)),
        kernels_(parse_kernels(args.config)) {}

  std::vector<ParamSpec> params() const override {
    std::vector<ParamSpec> p{ParamSpec::normal("w_in", {hidden_, d_}, "input projection (hidden, d_model)")};
    if (is_gated(activation_))
      p.push_back(ParamSpec::normal("w_gate", {hidden_, d_}, "gate projection (hidden, d_model), multiplies act(w_in x)"));
    p.push_back(ParamSpec::normal("w_out", {d_, hidden_}, "output projection (d_model, hidden)"));
    if (bias_) {
      p.push_back(ParamSpec::zeros("b_in", {hidden_}, "bias of w_in"));
      if (is_gated(activation_)) p.push_back(ParamSpec::zeros("b_gate", {hidden_}, "bias of w_gate"));
      p.push_back(ParamSpec::zeros("b_out", {d_}, "bias of w_out"));
    }
    return p;
  }

  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    bool gated = is_gated(activation_);
    torch::Tensor none;
    return {apply(x, activation_, kernels_, p["w_in"], bias_ ? p["b_in"] : none, gated ? p["w_gate"] : none,
                  gated && bias_ ? p["b_gate"] : none, p["w_out"], bias_ ? p["b_out"] : none)};
  }

 private:
  int64_t d_;
  std::string activation_;
  int64_t hidden_;
  bool bias_;
  Kernels kernels_;
};

}  // namespace mixlab::ffn
