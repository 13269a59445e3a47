// The FFN family library: the dense `mlp`.
#include "mlp.hpp"

MIXLAB_PLUGIN(mixlab::impl<mixlab::ffn::Mlp>())
