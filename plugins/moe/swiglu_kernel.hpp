// Fused SwiGLU (`kernels = "fused"`, the default of `mlp` and of `moe`'s sparse forms): the gated
// unit h = silu(a) * b as one pass over a and b forward and one pass backward. The composed
// reference (ffn_math.hpp: torch::silu, then a multiply) makes two passes forward, three
// backward, and keeps silu(a) as well for its backward (profiles in bench/README.md).
//
// With sigmoid(a) = 1 / (1 + exp(-a)):
//   forward    h = a sigmoid(a) b
//   backward  da = dh b sigmoid(a) (1 + a (1 - sigmoid(a))),   db = dh a sigmoid(a)
// in float for bfloat16 and float32 inputs (double for float64), each output rounded once where
// the reference rounds silu(a) first. Only a and b are saved. First-order only.
#pragma once

#include "swiglu_loops.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace mixlab::ffn {

struct SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
  // Elements per parallel task: enough that a task's start is small against its work.
  static constexpr int64_t kGrain = 1 << 14;

  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b) {
    auto ac = a.contiguous(), bc = b.contiguous();
    auto h = torch::empty_like(ac);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, ac.scalar_type(), "swiglu_forward", [&] {
      const scalar_t *ap = ac.const_data_ptr<scalar_t>(), *bp = bc.const_data_ptr<scalar_t>();
      scalar_t* hp = h.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, ac.numel(), kGrain, [&](int64_t i0, int64_t i1) {
        swiglu_loops::forward(ap + i0, bp + i0, hp + i0, i1 - i0);
      });
    });
    ctx->save_for_backward({ac, bc});
    return h;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1];
    auto dh = grads[0].to(a.scalar_type()).contiguous();
    auto da = torch::empty_like(a), db = torch::empty_like(b);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, a.scalar_type(), "swiglu_backward", [&] {
      const scalar_t *ap = a.const_data_ptr<scalar_t>(), *bp = b.const_data_ptr<scalar_t>();
      const scalar_t* gp = dh.const_data_ptr<scalar_t>();
      scalar_t *dap = da.mutable_data_ptr<scalar_t>(), *dbp = db.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, a.numel(), kGrain, [&](int64_t i0, int64_t i1) {
        swiglu_loops::backward(ap + i0, bp + i0, gp + i0, dap + i0, dbp + i0, i1 - i0);
      });
    });
    return {da, db};
  }

  // Where the fused form applies: a and b alike on the CPU in float32, bfloat16 or float64.
  static bool applies(const torch::Tensor& a, const torch::Tensor& b) {
    const auto t = a.scalar_type();
    return a.device().is_cpu() && b.device().is_cpu() && a.sizes() == b.sizes() && b.scalar_type() == t &&
           (t == torch::kFloat32 || t == torch::kBFloat16 || t == torch::kFloat64);
  }
};

}  // namespace mixlab::ffn
