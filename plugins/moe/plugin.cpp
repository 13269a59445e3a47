// The FFN family library: the dense `mlp` and the mixture of experts `moe`
// (dense reference and the sparse dispatch forms), with the family checks.
#include "checks.hpp"
#include "dense.hpp"
#include "mlp.hpp"
#include "sparse.hpp"

MIXLAB_PLUGIN_WITH_CHECKS(mixlab::moe::family_checks(), mixlab::impl<mixlab::ffn::Mlp>(),
                          mixlab::impl<mixlab::moe::MoeDense>(), mixlab::impl<mixlab::moe::MoeLoop>(),
                          mixlab::impl<mixlab::moe::MoeGrouped>(), mixlab::impl<mixlab::moe::MoeSparse>())
