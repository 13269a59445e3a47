// The weight gradients of bfloat16 training at the matrix units' full rate.
//
// The weight gradient of a linear layer, dW = dYᵀ·X, is a product whose first
// operand is transposed: both dY and X hold one token per row. LibTorch's CPU
// bfloat16 mm (oneDNN) multiplies that layout at about half the rate of two
// row-major operands on AMX (1.0-1.2 against 2.0-2.2 TFLOP/s on 2 cores), and
// its own transposing copy is slower still. Copying the operand to row-major
// with a blocked in-register transpose first (about 0.1 ms per MiB) and then
// multiplying row-major runs the product 1.4-1.9x faster (bench/README.md).
//
// While a RowMajorMatmulScope is alive, the CPU kernels of aten::mm and mm.out
// (which at::_grouped_mm calls per group) take that route for a bfloat16 product
// with a column-major first operand; every other product goes straight to ATen's
// own kernel. It is one of training.fused's fast paths:
// the trainer holds a scope for the run, and training.fused = false keeps ATen's
// kernel for A/B comparison. The result is the same product summed in another
// order: it differs from ATen's by float32 rounding inside the accumulation
// (tests/unit/test_fused_host_ops.cpp checks it against float64).
#pragma once

#include <torch/torch.h>

#include <memory>

namespace mixlab {

// Row-major copy of the 2-D tensor t whose elements are 16 bits wide (bfloat16, float16):
// t.contiguous(), by blocks transposed in registers where t is column-major.
torch::Tensor row_major_copy(const torch::Tensor& t);

// a·b for 2-D a and b; a column-major bfloat16 `a` is copied to row-major first.
torch::Tensor mm_row_major_operands(const torch::Tensor& a, const torch::Tensor& b);

class RowMajorMatmulScope {
 public:
  explicit RowMajorMatmulScope(bool enabled);  // false: ATen's kernel stays (no registration)
  ~RowMajorMatmulScope();
  RowMajorMatmulScope(const RowMajorMatmulScope&) = delete;
  RowMajorMatmulScope& operator=(const RowMajorMatmulScope&) = delete;

 private:
  std::unique_ptr<torch::Library> registration_;  // its destruction restores ATen's kernel
};

}  // namespace mixlab
