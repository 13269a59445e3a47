// Causal bfloat16 attention on the CPU with a float32 backward (`kernels = "fused"`, impl `sdpa`).
//
// LibTorch's CPU flash kernel runs its bfloat16 forward on the CPU's bfloat16 matrix units
// (AMX), but its bfloat16 backward converts every tile to float32 on the way and measured 2x
// slower than its own float32 backward (B 16, H 8, T 128, head 64, 2 threads, Sapphire Rapids:
// 22.6 ms against 11.2 ms including the casts; bench/README.md, "bfloat16 on a CPU with AMX").
// So the forward is the kernel in bfloat16, returning O and the row log-sum-exp L, and the
// backward is the same kernel's backward on float32 copies of q, k, v, O and dO, with the
// gradients rounded to bfloat16 once. The math is flash attention's:
//   P = exp(scale q k^T - L) (causal), dV = P^T dO, dP = dO V^T,
//   dS = P (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q.
// Only the backward's precision changes (float32 throughout instead of bfloat16 tiles).
// `kernels = "reference"` keeps torch::scaled_dot_product_attention's own backward (A/B).
#pragma once

#include <torch/torch.h>

namespace mixlab::attention {

struct CausalFlashFloat32Backward : public torch::autograd::Function<CausalFlashFloat32Backward> {
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
    auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    auto [dq, dk, dv] = at::_scaled_dot_product_flash_attention_for_cpu_backward(
        f32(grads[0]), f32(s[0]), f32(s[1]), f32(s[2]), f32(s[3]), s[4], 0.0, /*is_causal=*/true, {},
        ctx->saved_data["scale"].toDouble());
    const auto dtype = s[0].scalar_type();
    return {dq.to(dtype), dk.to(dtype), dv.to(dtype), torch::Tensor()};
  }

  // Where this form applies: causal without a window, bfloat16 on the CPU, with a backward to come.
  static bool applies(const torch::Tensor& q) {
    return q.device().is_cpu() && q.scalar_type() == torch::kBFloat16 && torch::GradMode::is_enabled();
  }
};

}  // namespace mixlab::attention
