// Mixture-of-depths (Raposo et al. 2024, arXiv 2404.02258): a layer that only
// some tokens pass through. A router, a d_model -> 1 projection with a bias,
// scores every token on the layer's input x: r_t = w . x_t + b. In training the
// top k = ceil(capacity * T) tokens of each sequence pass (kept in sequence order,
// as a shorter sequence, so a causal mixer sees them in order); the others ride
// the residual unchanged. A passing token's update is scaled by its router weight,
// so the router gets a gradient from the language-modelling loss (the paper's eq. 1):
//   h'_t = h_t + sigmoid(r_t) * (block(h_sel)_t - h_t)   for a passing t,   h'_t = h_t otherwise
// (the paper multiplies by r_t itself; the sigmoid keeps the scale in (0, 1) and is the
// quantity the auxiliary loss calibrates).
//
// Top-k over a sequence is not causal: whether token t passes depends on later
// tokens. Generation uses the paper's first option (section 3.5): an auxiliary
// binary cross-entropy teaches sigmoid(r_t) to predict top-k membership, weight
// `aux_loss`, and outside training a token passes when sigmoid(r_t) > 0.5 (r_t > 0),
// a decision that depends on its own input only. Validation runs this inference
// routing too, so its loss is the loss generation has.
//
// Side outputs, per gated layer "layers.<i>.depth_gating/": aux_loss (the BCE),
// routed_share (share of tokens that passed), router_accuracy (share of tokens
// whose threshold decision equals top-k membership: how well inference routing
// follows training routing).
//
// Decode: a gated layer steps its block's state with the passing tokens only (a
// skipped token never enters that layer's KV cache or recurrent state, as in the
// forward), which needs one sequence per session: a model with depth gating
// decodes with batch 1 (host generate) and recomputes otherwise.
#pragma once

#include "model/block.hpp"

namespace mixlab {

// ceil(capacity * seq_len), at least 1: the tokens of a sequence that pass in training.
int64_t routed_tokens(double capacity, int64_t seq_len);
// The router's parameters: weight (1, d_model) and bias (1).
int64_t depth_router_params(int64_t d_model);

// The tokens of each sequence that pass, gathered in sequence order: `index` (B, K), the
// passing positions first, then (inference, where rows pass different counts) other positions
// after them as padding, `valid` (B, K) float 1 for passing and 0 for padding.
struct Route {
  torch::Tensor index;
  torch::Tensor valid;
};
// From a (B, T) bool mask of passing tokens.
Route route_of(const torch::Tensor& passing);

std::unique_ptr<Block> make_depth_gated_block(size_t index, const DepthGating& gating, std::unique_ptr<Block> inner,
                                              const BlockContext& context);

}  // namespace mixlab
