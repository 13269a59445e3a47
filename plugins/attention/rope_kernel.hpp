// Fused RoPE (`kernels = "fused"`): Rope::apply's rotation as one pass over x forward and one
// over the gradient backward. The composed reference (rope.hpp) runs narrow, neg, cat, two
// multiplies and an add per tensor, and its backward materialises each slice's zero-padded
// gradient (profiles in bench/README.md).
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

#include <algorithm>
#include <array>

namespace mixlab::attention {
namespace rope_kernel {

template <class T, bool Transpose>
void rotate_rows(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& out,
                 int64_t rotary_dim) {
  using Acc = at::opmath_type<T>;
  const int64_t D = x.size(3), half = rotary_dim / 2;
  // Rows (b, h, t) visited in x's memory order, outermost dimension first (q and k come out
  // of the projection as (B, T, H, D) in memory): loop dimension i is x's dimension dims[i].
  std::array<int64_t, 3> dims{0, 1, 2};
  std::stable_sort(dims.begin(), dims.end(), [&](int64_t a, int64_t b) { return x.stride(a) > x.stride(b); });
  const std::array<int64_t, 3> n{x.size(dims[0]), x.size(dims[1]), x.size(dims[2])};
  const std::array<int64_t, 3> xs{x.stride(dims[0]), x.stride(dims[1]), x.stride(dims[2])};
  const std::array<int64_t, 3> os{out.stride(dims[0]), out.stride(dims[1]), out.stride(dims[2])};
  const int64_t t_dim = std::find(dims.begin(), dims.end(), 2) - dims.begin();
  const T* xp = x.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  const T *cp = cos.const_data_ptr<T>(), *sp = sin.const_data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, D));
  at::parallel_for(0, n[0] * n[1] * n[2], grain, [&](int64_t r0, int64_t r1) {
    std::array<int64_t, 3> i{r0 / (n[1] * n[2]), r0 / n[2] % n[1], r0 % n[2]};
    for (int64_t r = r0; r < r1; ++r) {
      const T* __restrict__ xr = xp + i[0] * xs[0] + i[1] * xs[1] + i[2] * xs[2];
      T* __restrict__ yr = op + i[0] * os[0] + i[1] * os[1] + i[2] * os[2];
      const T* __restrict__ c = cp + i[t_dim] * rotary_dim;
      const T* __restrict__ s = sp + i[t_dim] * rotary_dim;
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
      if (++i[2] < n[2]) continue;  // the next row: i[2] counts fastest, carries into i[1], then i[0]
      i[2] = 0;
      if (++i[1] == n[1]) i[1] = 0, ++i[0];
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
