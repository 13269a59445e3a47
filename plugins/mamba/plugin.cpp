// The Mamba family library: the Mamba-2 block with two interchangeable SSD cores
// on one parameter layout, `recurrent` (the reference) and `chunked`.
#include "checks.hpp"
#include "chunked.hpp"
#include "recurrent.hpp"

MIXLAB_PLUGIN_WITH_CHECKS(mixlab::mamba::family_checks(), mixlab::impl<mixlab::mamba::MambaRecurrent>(),
                          mixlab::impl<mixlab::mamba::MambaChunked>())
