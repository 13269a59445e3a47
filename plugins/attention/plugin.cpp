// The attention mixer library: three implementations on one parameter layout,
// A/B-swappable on the same weights, and the family checks.
#include "checks.hpp"
#include "flash.hpp"
#include "module.hpp"
#include "sdpa.hpp"

using namespace mixlab::attention;

MIXLAB_PLUGIN_WITH_CHECKS(family_checks(), mixlab::impl<Attention<Reference>>(), mixlab::impl<Attention<Flash>>(),
                          mixlab::impl<Attention<Sdpa>>())
