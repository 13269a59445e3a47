// Broken on purpose: returns NaN; conformance must flag it.
#include "prefix_mean.hpp"

class NanOutput : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "nan_output", "default", "1.0.0", "NaN"}; }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    return {PrefixMean::forward(x, p, c).y * std::numeric_limits<double>::quiet_NaN()};
  }
};

MIXLAB_PLUGIN(mixlab::impl<NanOutput>())
