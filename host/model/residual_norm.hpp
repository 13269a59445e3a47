// The residual add and the norm after it, the seam between every two sublayers:
//   s = h + branch,   y = (s - mu) * rstd * w (+ b)
// with, per row of d values, RMSNorm: mu = 0, rstd = 1 / sqrt(mean(s^2) + eps);
// LayerNorm: mu = mean(s), rstd = 1 / sqrt(mean((s - mu)^2) + eps).
// Backward, with xhat = (s - mu) * rstd, g = dy * w and ds the gradient s gets
// from the rest of the residual stream:
//   dh = dbranch = ds + rstd * (g - [LayerNorm: mean(g)] - xhat * mean(g * xhat)),
//   dw = sum over rows of dy * xhat,  db = sum over rows of dy.
//
// Two forms, chosen by training.fused: the reference composes ATen ops (add, then
// rms_norm / layer_norm) and lets autograd derive the backward; the fused form is
// one autograd node whose forward reads h and branch once and writes s and y, and
// whose backward is one pass over the rows (plus the sum of each thread block's
// weight gradients, in a fixed order, so results do not depend on scheduling). It
// keeps s and one or two floats per row for backward instead of the reference's
// intermediate tensors. Tests: tests/unit/test_fused_host_ops.cpp.
#pragma once

#include <torch/torch.h>

namespace mixlab {

struct AddNorm {
  torch::Tensor sum;     // h + branch: the residual stream after the add
  torch::Tensor normed;  // norm(sum)
};

// bias undefined: RMSNorm; defined: LayerNorm. Normalises over the last dimension.
AddNorm add_norm_reference(const torch::Tensor& h, const torch::Tensor& branch, const torch::Tensor& weight,
                           const torch::Tensor& bias, double eps);
AddNorm add_norm_fused(const torch::Tensor& h, const torch::Tensor& branch, const torch::Tensor& weight,
                       const torch::Tensor& bias, double eps);

}  // namespace mixlab
