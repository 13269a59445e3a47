// `moe` / `dense`: every expert on every token, masked by the gate weights. The
// reference for `sparse`; its work grows with the number of experts.
#pragma once

#include "layer.hpp"

namespace mixlab::moe {

class MoeDense : public MoeLayer {
 public:
  static ImplInfo info() {
    return {MIXLAB_FAMILY_FFN, "moe", "dense", "1.1.0",
            "mixture of experts, reference: all experts on all tokens, masked by the top-k gate weights"};
  }
  using MoeLayer::MoeLayer;

  torch::Tensor routed_experts(const torch::Tensor& tokens, const Routing& r, const ExpertStack& e) const override {
    auto outputs = ffn::apply_stacked(tokens, cfg_.activation, cfg_.kernels, e.w_in, e.w_gate, e.w_out);  // (E, N, d)
    // (N, E): each token's gate weight for the experts it selected, 0 elsewhere.
    auto combine = torch::zeros({tokens.size(0), cfg_.experts}, r.weights.options()).scatter(1, r.experts, r.weights);
    return torch::einsum("ne,end->nd", {combine.to(tokens.scalar_type()), outputs});
  }
};

}  // namespace mixlab::moe
