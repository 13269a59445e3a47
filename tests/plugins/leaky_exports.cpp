// Broken on purpose: a working plugin built without hidden visibility or the
// SDK's version script, so it exports far more than its entry symbol;
// conformance must fail binary hygiene.
#include "prefix_mean.hpp"

class Leaky : public mixlab::test::PrefixMean {
 public:
  using PrefixMean::PrefixMean;
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "leaky", "default", "1.0.0", "exports everything"}; }
};

extern "C" MIXLAB_EXPORT int leaky_helper_symbol() { return 42; }

MIXLAB_PLUGIN(mixlab::impl<Leaky>())
