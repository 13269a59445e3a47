// Broken on purpose: mixes in the future (a suffix mean); conformance must fail causality.
#include "prefix_mean.hpp"

class SuffixMean : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "noncausal", "default", "1.0.0", "looks ahead"}; }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call&) const override {
    return {torch::linear(mixlab::test::prefix_mean(x.flip(1)).flip(1), p["w"])};
  }
};

MIXLAB_PLUGIN(mixlab::impl<SuffixMean>())
