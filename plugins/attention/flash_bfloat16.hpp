// Causal bfloat16 attention on the CPU (`kernels = "fused"`, impl `sdpa`).
//
// The forward is LibTorch's CPU flash kernel in bfloat16 (its products on the CPU's bfloat16
// matrix units), returning O and the row log-sum-exp L. LibTorch's bfloat16 backward converts
// every tile to float32 and runs float32 products (22.6 ms against its own float32 backward's
// 11.2 ms at B 16, H 8, T 128, head 64 on 2 Sapphire Rapids cores; bench/README.md). So the
// backward is, where the CPU has AMX, flash_backward_amx.hpp's kernel (bfloat16 products on the
// matrix units, float32 softmax and accumulation), and elsewhere the same LibTorch kernel's
// backward on float32 copies of q, k, v, O and dO, the gradients rounded to bfloat16 once.
// Both compute flash attention's backward:
//   P = exp(scale q k^T - L) (causal), dV = P^T dO, dP = dO V^T,
//   dS = P (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q.
// `kernels = "reference"` keeps torch::scaled_dot_product_attention's own backward (A/B).
#pragma once

#include "flash_backward_amx.hpp"

#include <torch/torch.h>

namespace mixlab::attention {

struct CausalFlashBfloat16 : public torch::autograd::Function<CausalFlashBfloat16> {
  // q, k, v (B, H, T, head_dim) in bfloat16 on the CPU, K/V heads already repeated to H.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale) {
    auto [out, logsumexp] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, /*is_causal=*/true, {}, scale);
    ctx->save_for_backward({q, k, v, out, logsumexp});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto s = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    auto [dq, dk, dv] = amx_attention_backward_available()
                            ? causal_attention_backward_amx(grads[0], s[0], s[1], s[2], s[3], s[4], scale)
                            : backward_float32(grads[0], s[0], s[1], s[2], s[3], s[4], scale);
    return {dq, dk, dv, torch::Tensor()};
  }

  // Without AMX: LibTorch's flash backward on float32 copies, the gradients rounded once.
  static std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> backward_float32(
      const torch::Tensor& dout, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
      const torch::Tensor& out, const torch::Tensor& lse, double scale) {
    auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    auto [dq, dk, dv] = at::_scaled_dot_product_flash_attention_for_cpu_backward(
        f32(dout), f32(q), f32(k), f32(v), f32(out), lse, 0.0, /*is_causal=*/true, {}, scale);
    return {dq.to(q.scalar_type()), dk.to(q.scalar_type()), dv.to(q.scalar_type())};
  }

  // Where this form applies: causal without a window, bfloat16 on the CPU, with a backward to come.
  static bool applies(const torch::Tensor& q) {
    return q.device().is_cpu() && q.scalar_type() == torch::kBFloat16 && torch::GradMode::is_enabled();
  }
};

}  // namespace mixlab::attention
