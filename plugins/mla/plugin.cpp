// The MLA mixer library: the naive and the weight-absorbed forms on one
// parameter layout, A/B-swappable on the same weights, and the family checks.
#include "absorbed.hpp"
#include "checks.hpp"
#include "module.hpp"
#include "naive.hpp"

using namespace mixlab::mla;

MIXLAB_PLUGIN_WITH_CHECKS(family_checks(), mixlab::impl<Mla<Naive>>(), mixlab::impl<Mla<Absorbed>>())
