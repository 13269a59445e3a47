// The element loops of the fused SwiGLU (swiglu_kernel.hpp has the math); n contiguous elements.
#pragma once

#include <c10/util/BFloat16.h>

#include <cstdint>

namespace mixlab::ffn::swiglu_loops {

// h = silu(a) b
void forward(const float* a, const float* b, float* h, int64_t n);
void forward(const c10::BFloat16* a, const c10::BFloat16* b, c10::BFloat16* h, int64_t n);
void forward(const double* a, const double* b, double* h, int64_t n);

// da = dh b silu'(a), db = dh silu(a)
void backward(const float* a, const float* b, const float* dh, float* da, float* db, int64_t n);
void backward(const c10::BFloat16* a, const c10::BFloat16* b, const c10::BFloat16* dh, c10::BFloat16* da,
              c10::BFloat16* db, int64_t n);
void backward(const double* a, const double* b, const double* dh, double* da, double* db, int64_t n);

}  // namespace mixlab::ffn::swiglu_loops
