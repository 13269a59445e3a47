// The Hyena mixer library: `direct` (reference) and `fft`, one parameter
// layout, with the family checks.
#include "checks.hpp"
#include "direct.hpp"
#include "fft.hpp"
#include "operator.hpp"

MIXLAB_PLUGIN_WITH_CHECKS(mixlab::hyena::family_checks(), mixlab::impl<mixlab::hyena::Hyena<mixlab::hyena::DirectConv>>(),
                          mixlab::impl<mixlab::hyena::Hyena<mixlab::hyena::FftConv>>())
