// A second implementation of `prefix_mean` with a different parameter layout
// (an extra bias): `host ab` must refuse to swap it, listing the difference.
#include "prefix_mean.hpp"

class PrefixMeanWide : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "prefix_mean", "wide", "1.0.0", "with a bias"}; }
  std::vector<mixlab::ParamSpec> params() const override {
    auto p = PrefixMean::params();
    p.push_back(mixlab::ParamSpec::zeros("bias", {d_}, "output bias"));
    return p;
  }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    return {PrefixMean::forward(x, p, c).y + p["bias"]};
  }
};

MIXLAB_PLUGIN(mixlab::impl<PrefixMeanWide>())
