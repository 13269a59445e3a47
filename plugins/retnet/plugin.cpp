// The RetNet mixer library: three implementations of one layer on one
// parameter layout, and the family checks that hold them together.
#include "checks.hpp"
#include "chunkwise.hpp"
#include "layer.hpp"
#include "parallel.hpp"
#include "recurrent.hpp"

using namespace mixlab::retnet;

MIXLAB_PLUGIN_WITH_CHECKS(family_checks(), mixlab::impl<Retention<Parallel>>(), mixlab::impl<Retention<Recurrent>>(),
                          mixlab::impl<Retention<Chunkwise>>())
