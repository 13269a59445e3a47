// The optimizer step of training.fused: the update of torch::optim::AdamW::step
// (decoupled weight decay, bias-corrected moments) through ATen's fused AdamW
// kernel, one multi-tensor call per parameter group instead of about ten tensor
// operations per parameter, and gradient clipping with one norm over all
// gradients (_foreach_norm) and one multi-tensor scale.
//
// The moments live in the torch::optim::AdamW object itself (its AdamWParamState
// per parameter, created and counted exactly as its own step() does), so a
// checkpoint is the same whichever step wrote it and a run may resume on either.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace mixlab {

// One AdamW step over every parameter with a gradient; what optimizer.step() does.
void fused_adamw_step(torch::optim::AdamW& optimizer);

// Scales the gradients so that their joint L2 norm is at most max_norm; returns the norm before
// clipping. The same coefficient as torch::nn::utils::clip_grad_norm_: max_norm / (norm + 1e-6),
// at most 1.
double clip_grad_norm_multi_tensor(const std::vector<torch::Tensor>& parameters, double max_norm);

}  // namespace mixlab
