// Broken on purpose: returns one column too many; the host must refuse the output.
#include "prefix_mean.hpp"

class WrongShape : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "wrong_shape", "default", "1.0.0", "bad shape"}; }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    auto y = PrefixMean::forward(x, p, c).y;
    return {torch::cat({y, y.narrow(2, 0, 1)}, 2)};
  }
};

MIXLAB_PLUGIN(mixlab::impl<WrongShape>())
