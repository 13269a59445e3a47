// The multi-token prediction objective (model/mtp_head.hpp): lambda / D * sum_k L_k,
// L_k the cross-entropy of module k's predictions of t_{i+k+1} through the shared LM
// head (train/lm_head_loss.hpp, chunked when training.fused), a mean over the scored
// tokens as the main loss. Logged per depth as the statistic "mtp.<k>/loss".
#pragma once

#include "model/model.hpp"

#include <functional>

namespace mixlab {

// stream: the main model's last residual stream (forward_features' layer_outputs.back());
// inputs, targets (B, T). `tokens_for_mean(count)` turns this process's scored tokens into the
// denominator of a mean (data parallel: the mean count over the ranks). Appends the modules'
// side outputs, their aux losses and the per-depth losses (statistics) to `out`.
torch::Tensor mtp_objective(const Model& model, const torch::Tensor& stream, const torch::Tensor& inputs,
                            const torch::Tensor& targets, bool chunked, bool training, uint64_t seed,
                            const std::function<double(int64_t)>& tokens_for_mean, ModelOutput& out);

}  // namespace mixlab
