// Broken on purpose: forward throws; the host must get an error status, not an exception.
#include "prefix_mean.hpp"

class Throws : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "throws", "default", "1.0.0", "throws"}; }
  mixlab::Output forward(const torch::Tensor&, const mixlab::Params&, const mixlab::Call&) const override {
    throw std::runtime_error("deliberate failure in forward");
  }
};

MIXLAB_PLUGIN(mixlab::impl<Throws>())
