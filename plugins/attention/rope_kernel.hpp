// Fused RoPE (`kernels = "fused"`): Rope::apply's rotation as one pass over x forward and one
// over the gradient backward. The composed reference (rope.hpp) runs narrow, neg, cat, two
// multiplies and an add per tensor, and its backward materialises each slice's zero-padded
// gradient; on a d_model 512 Llama-style step that was ~10% of the time (bench/README.md).
//
// With half = R / 2 and the tables c, s (T, R) of Rope::tables, per row of x:
//   forward    y[j] = x[j] c[j] - x[j+half] s[j]       y[j+half] = x[j+half] c[j+half] + x[j] s[j+half]
//   backward  dx[j] = g[j] c[j] + g[j+half] s[j+half]  dx[j+half] = g[j+half] c[j+half] - g[j] s[j]
// (the transpose of the forward's 2 x 2 rotation); channels from R on pass through. Products are
// formed in at::opmath_type (float for bfloat16, rounded once, where the reference rounds each op;
// float32 and float64 round as the reference does). First-order only.
#pragma once

#include "rope.hpp"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

namespace mixlab::attention {
namespace rope_kernel {

template <class T, bool Transpose>
void rotate_rows(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& out,
                 int64_t rotary_dim) {
  using Acc = at::opmath_type<T>;
  const int64_t H = x.size(1), Tn = x.size(2), D = x.size(3), half = rotary_dim / 2;
  const auto xs = x.strides(), os = out.strides();
  const T* xp = x.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  const T *cp = cos.const_data_ptr<T>(), *sp = sin.const_data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, D));
  at::parallel_for(0, x.size(0) * H * Tn, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r % Tn, h = (r / Tn) % H, b = r / (Tn * H);
      const T* xr = xp + b * xs[0] + h * xs[1] + t * xs[2];
      T* yr = op + b * os[0] + h * os[1] + t * os[2];
      const T *c = cp + t * rotary_dim, *s = sp + t * rotary_dim;
      for (int64_t j = 0; j < half; ++j) {
        const Acc x1 = xr[j], x2 = xr[j + half];
        if (Transpose) {
          yr[j] = static_cast<T>(x1 * Acc(c[j]) + x2 * Acc(s[j + half]));
          yr[j + half] = static_cast<T>(x2 * Acc(c[j + half]) - x1 * Acc(s[j]));
        } else {
          yr[j] = static_cast<T>(x1 * Acc(c[j]) - x2 * Acc(s[j]));
          yr[j + half] = static_cast<T>(x2 * Acc(c[j + half]) + x1 * Acc(s[j + half]));
        }
      }
      for (int64_t j = rotary_dim; j < D; ++j) yr[j] = xr[j];
    }
  });
}

// x (B, H, T, D) with any strides; the result has x's layout when x is dense (empty_like).
inline torch::Tensor rotate(const torch::Tensor& x_in, const torch::Tensor& cos, const torch::Tensor& sin,
                            int64_t rotary_dim, bool transpose) {
  TORCH_CHECK(x_in.dim() == 4 && cos.dim() == 2 && cos.size(0) == x_in.size(2) && cos.size(1) == rotary_dim &&
                  rotary_dim <= x_in.size(3) && rotary_dim % 2 == 0,
              "rope_fused: x (B, H, T, D) and tables (T, rotary_dim) expected, got ", x_in.sizes(), " and ",
              cos.sizes());
  auto x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  auto c = cos.to(x.scalar_type()).contiguous(), s = sin.to(x.scalar_type()).contiguous();
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rope_fused", [&] {
    if (transpose) rotate_rows<scalar_t, true>(x, c, s, out, rotary_dim);
    else rotate_rows<scalar_t, false>(x, c, s, out, rotary_dim);
  });
  return out;
}

struct RotaryFunction : public torch::autograd::Function<RotaryFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, int64_t rotary_dim) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["rotary_dim"] = rotary_dim;
    return rotate(x, cos, sin, rotary_dim, false);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], ctx->saved_data["rotary_dim"].toInt(), true), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace rope_kernel

// Rope::apply(x, cos, sin) in one pass (forward and backward); the tables do not take gradients.
inline torch::Tensor rope_fused(const Rope& rope, const torch::Tensor& x, const torch::Tensor& cos,
                                const torch::Tensor& sin) {
  return rope_kernel::RotaryFunction::apply(x, cos.detach(), sin.detach(), rope.rotary_dim);
}

}  // namespace mixlab::attention
