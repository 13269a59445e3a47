// Broken on purpose: a hand-written backward that returns twice the true
// gradient of x; conformance must fail the finite-difference check.
#include "prefix_mean.hpp"

class WrongBackward : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() {
    mixlab::ImplInfo i{MIXLAB_FAMILY_MIXER, "wrong_backward", "default", "1.0.0", "bad gradient"};
    i.caps |= MIXLAB_CAP_CUSTOM_BACKWARD;
    return i;
  }
  mixlab::Grads backward(const torch::Tensor& x, const mixlab::Params& p, const torch::Tensor& grad_y,
                         const std::vector<torch::Tensor>&, const mixlab::Call& call) const override {
    auto xg = x.detach().requires_grad_(true);
    auto w = p["w"].detach().requires_grad_(true);
    auto y = torch::linear(mixlab::test::prefix_mean(xg), w);
    auto g = torch::autograd::grad({y}, {xg, w}, {grad_y});
    return {2.0 * g[0], {g[1]}};
  }
};

MIXLAB_PLUGIN(mixlab::impl<WrongBackward>())
