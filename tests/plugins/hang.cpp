// Broken on purpose: never returns from forward when T == 7; the runner must
// kill it after its time limit and go on.
#include "prefix_mean.hpp"

#include <chrono>
#include <thread>

class Hang : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "hang", "default", "1.0.0", "hangs"}; }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    while (x.size(1) == 7) std::this_thread::sleep_for(std::chrono::seconds(1));
    return PrefixMean::forward(x, p, c);
  }
};

MIXLAB_PLUGIN(mixlab::impl<Hang>())
