// Fused segment sum (`kernels = "fused"`): chunked.hpp's segsum as one pass over the (Q, Q)
// output forward and one backward. The composed reference (`segsum`) runs a masked_fill, a
// cumsum and a second masked_fill on the expanded (..., Q, Q) tensor, and its backward two
// masked_fills, a reversed cumsum (two flips) and a sum: about 16% of a Mamba-2 step in
// bfloat16 on 2 cores (bench/README.md).
//
// With a (..., Q) and out[i, j] = a_{j+1} + ... + a_i for j < i, 0 for j = i, -inf for j > i:
//   forward   out[i, j] = out[i-1, j] + a_i, accumulated in at::acc_type (double for float32,
//             as ATen's CPU cumsum does, so the values equal the reference bit for bit)
//   backward  da_k = sum over j < k <= i of g[i, j] (the entries above the diagonal carry no
//             gradient, as the reference's masks give), as column sums from the last row up.
// First-order only.
#pragma once

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <limits>
#include <vector>

namespace mixlab::mamba {
namespace segsum_kernel {

// a (rows, Q) contiguous -> out (rows, Q, Q).
inline torch::Tensor forward(const torch::Tensor& a) {
  const int64_t rows = a.size(0), Q = a.size(1);
  auto out = torch::empty({rows, Q, Q}, a.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.scalar_type(), "segsum_fused", [&] {
    using Acc = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const auto minus_inf = -std::numeric_limits<scalar_t>::infinity();
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<Acc> acc(static_cast<size_t>(Q));
      for (int64_t r = r0; r < r1; ++r) {
        const scalar_t* ar = ap + r * Q;
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (int64_t i = 0; i < Q; ++i) {
          scalar_t* row = op + (r * Q + i) * Q;
          const Acc ai = static_cast<Acc>(ar[i]);
          for (int64_t j = 0; j < i; ++j) row[j] = static_cast<scalar_t>(acc[j] += ai);
          row[i] = scalar_t(0);
          for (int64_t j = i + 1; j < Q; ++j) row[j] = minus_inf;
        }
      }
    });
  });
  return out;
}

// g (rows, Q, Q) contiguous -> da (rows, Q).
inline torch::Tensor backward(const torch::Tensor& g) {
  const int64_t rows = g.size(0), Q = g.size(1);
  auto da = torch::empty({rows, Q}, g.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, g.scalar_type(), "segsum_fused_backward", [&] {
    using Acc = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* dp = da.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<Acc> column(static_cast<size_t>(Q));  // column[j] = sum of g[i, j] over the rows i >= k
      for (int64_t r = r0; r < r1; ++r) {
        std::fill(column.begin(), column.end(), Acc(0));
        for (int64_t k = Q - 1; k >= 0; --k) {
          const scalar_t* row = gp + (r * Q + k) * Q;
          Acc sum = 0;
          for (int64_t j = 0; j < k; ++j) sum += (column[j] += static_cast<Acc>(row[j]));
          dp[r * Q + k] = static_cast<scalar_t>(sum);
        }
      }
    });
  });
  return da;
}

struct SegsumFunction : public torch::autograd::Function<SegsumFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& a) {
    const int64_t Q = a.size(-1);
    auto sizes = a.sizes().vec();
    sizes.push_back(Q);
    return segsum_kernel::forward(a.reshape({-1, Q}).contiguous()).view(sizes);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    const int64_t Q = grads[0].size(-1);
    auto sizes = grads[0].sizes().vec();
    sizes.pop_back();
    return {segsum_kernel::backward(grads[0].reshape({-1, Q, Q}).contiguous()).view(sizes)};
  }
};

}  // namespace segsum_kernel

// The fused form of segsum (chunked.hpp): the same values, one pass each way.
inline torch::Tensor segsum_fused(const torch::Tensor& a) { return segsum_kernel::SegsumFunction::apply(a); }

}  // namespace mixlab::mamba
