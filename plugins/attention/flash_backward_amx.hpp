// Causal attention backward in bfloat16 on the CPU's matrix units (AMX): FlashAttention-2's
// backward on 64 x 64 tiles, every product through oneDNN's brgemm micro-kernel as LibTorch
// exposes it (at::native::cpublas::brgemm: bfloat16 A and B, float32 C). Per batch and head, with
// q, k, v, O, dO (T x D) and the forward's row log-sum-exp L of the scaled scores:
//   P = exp(scale q k^T - L), zero above the diagonal     dV = P^T dO
//   dP = dO V^T,  delta = rowsum(dO * O),  dS = P * (dP - delta)
//   dQ = scale dS K,  dK = scale dS^T Q
// Precision as FlashAttention-2: scores, P, dP, dS, delta and every accumulation in float32; P
// and dS rounded to bfloat16 once, as operands of the dV, dK and dQ products.
//
// Why: LibTorch's CPU flash backward has no bfloat16 products on the matrix units (its bfloat16
// form converts each tile and multiplies in float32), and float32 products run at a fifth of the
// bfloat16 rate on an AMX machine. A layer's forward+backward at d_model 1024, 16 heads, batch 16
// on 2 cores: 59 / 115 / 268 ms at T 128 / 256 / 512 with this backward, 74 / 175 / 480 with the
// float32 form, 94 / 180 / 433 with LibTorch's own (bench/README.md, "Attention backward on the
// matrix units").
#pragma once

#include <torch/torch.h>

#include <tuple>

namespace mixlab::attention {

// Whether this process can run the kernel: x86-64 with oneDNN's micro-kernels and AMX (which
// brings AVX-512 and its bfloat16 conversions), as cpublas::could_pack reports it.
bool amx_attention_backward_available();

// dq, dk, dv (B, H, T, D) bfloat16 for bfloat16 q, k, v, out, dout (B, H, T, D) on the CPU (any
// strides; rows are read in place where D is contiguous), `lse` the float32 (B, H, T) log-sum-exp that
// at::_scaled_dot_product_flash_attention_for_cpu returns, causal attention with `scale`.
// Any T and D: tiles past T and D are zero-padded. Requires amx_attention_backward_available().
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> causal_attention_backward_amx(
    const torch::Tensor& dout, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
    const torch::Tensor& out, const torch::Tensor& lse, double scale);

}  // namespace mixlab::attention
