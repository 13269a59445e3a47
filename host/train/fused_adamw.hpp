// The optimizer step of training.fused: the update of torch::optim::AdamW::step
// (decoupled weight decay, bias-corrected moments) through ATen's fused AdamW
// kernel, one multi-tensor call per parameter group instead of about ten tensor
// operations per parameter, and gradient clipping folded into that call: the
// gradients' joint norm in one pass over each (float64 sums of chunks, in a fixed
// order whatever the thread count), and the clipping factor applied by the
// kernel's grad_scale as it reads each gradient, not by a pass of its own.
//
// The moments live in the torch::optim::AdamW object itself (its AdamWParamState
// per parameter, created and counted exactly as its own step() does), so a
// checkpoint is the same whichever step wrote it and a run may resume on either.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace mixlab {

// The joint L2 norm of the parameters' gradients (those defined), what
// torch::nn::utils::clip_grad_norm_ returns.
double gradient_norm(const std::vector<torch::Tensor>& parameters);

// The factor torch::nn::utils::clip_grad_norm_ scales the gradients by: max_norm / (norm + 1e-6),
// at most 1.
double clip_factor(double norm, double max_norm);

// One AdamW step over every parameter with a gradient: what optimizer.step() does after the
// gradients were multiplied by grad_factor (a clip_factor). The kernel divides each gradient by
// 1 / grad_factor as it reads it; with grad_factor 1 the gradients are used as they are.
void fused_adamw_step(torch::optim::AdamW& optimizer, double grad_factor = 1.0);

}  // namespace mixlab
