// The Titans neural-memory mixer library: the token-by-token and the
// chunk-parallel forms on one parameter layout, A/B-swappable on the same
// weights, and the family checks.
#include "checks.hpp"
#include "chunked.hpp"
#include "module.hpp"
#include "naive.hpp"

using namespace mixlab::titans;

MIXLAB_PLUGIN_WITH_CHECKS(family_checks(), mixlab::impl<Titans<Naive>>(), mixlab::impl<Titans<Chunked>>())
