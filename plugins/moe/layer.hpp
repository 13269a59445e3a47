// The `moe` module skeleton both implementations derive from: route, run the
// routed experts (the one step that differs), add the shared experts.
#pragma once

#include "router.hpp"

namespace mixlab::moe {

class MoeLayer : public Module {
 public:
  explicit MoeLayer(const CreateArgs& args) : cfg_(MoeConfig::parse(args)) {}

  std::vector<ParamSpec> params() const override { return param_specs(cfg_); }
  std::vector<SideSpec> sides() const override { return side_specs(cfg_); }

  Output forward(const torch::Tensor& x, const Params& p, const Call& call) const override {
    auto tokens = x.reshape({-1, cfg_.d_model});
    Routing r = route(tokens, p["router"], cfg_, call);
    auto y = routed_experts(tokens, r, ExpertStack::from(p, cfg_, ""));
    if (cfg_.shared_experts > 0) y = y + shared_experts(tokens, ExpertStack::from(p, cfg_, "shared_"), cfg_);
    return {y.reshape(x.sizes()), side_outputs(r, cfg_, x.sizes().slice(0, 2))};
  }

  // The layer's cost, whatever the implementation: router + top-k experts + shared experts.
  Cost cost(int64_t, int32_t) const override {
    double active = static_cast<double>(cfg_.experts * cfg_.d_model +
                                        (cfg_.top_k + cfg_.shared_experts) * cfg_.params_per_expert());
    return {active, 2.0 * active};
  }

  const MoeConfig& config() const { return cfg_; }

  // sum over slots of weight · expert(x) for tokens (N, d); returns (N, d) in x's dtype.
  virtual torch::Tensor routed_experts(const torch::Tensor& tokens, const Routing& r,
                                       const ExpertStack& experts) const = 0;

 protected:
  MoeConfig cfg_;
};

}  // namespace mixlab::moe
