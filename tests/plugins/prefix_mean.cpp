// A correct plugin: passes the whole conformance suite.
#include "prefix_mean.hpp"

MIXLAB_PLUGIN(mixlab::impl<mixlab::test::PrefixMean>())
