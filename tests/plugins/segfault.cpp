// Broken on purpose: crashes (SIGSEGV) in forward when T == 7; the conformance
// runner must report the check it died in and go on with the others.
#include "prefix_mean.hpp"

#include <csignal>

class Segfault : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "segfault", "default", "1.0.0", "crashes"}; }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    if (x.size(1) == 7) std::raise(SIGSEGV);
    return PrefixMean::forward(x, p, c);
  }
};

MIXLAB_PLUGIN(mixlab::impl<Segfault>())
