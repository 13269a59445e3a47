// The element loops of swiglu_kernel.hpp. This file is compiled apart from the rest of the
// plugin, with -fno-math-errno and without LibTorch's precompiled header (CMakeLists.txt), so
// that GCC vectorises expf through glibc's vector math library (libmvec) and builds each loop
// for AVX-512, AVX2 and the x86-64 baseline, picked at load time by the CPU (target_clones).
#include "swiglu_loops.hpp"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// glibc declares expf's vector forms only under -ffast-math (bits/math-vector.h), which would
// also let GCC drop NaN and infinity handling; declared here, they vectorise with math errno off.
extern "C" float expf(float) noexcept __attribute__((simd("notinbranch")));
#define MIXLAB_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MIXLAB_ISA_CLONES
#endif

namespace mixlab::ffn::swiglu_loops {
namespace {

inline float exp_of(float x) { return expf(x); }
inline double exp_of(double x) { return std::exp(x); }

// The loops in float (double for float64); bfloat16 goes through them a block at a time, widened
// to float on the stack and rounded back once, which vectorises better than widening in the loop.
template <class T>
inline void forward_body(const T* a, const T* b, T* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T x = a[i];
    h[i] = x / (T(1) + exp_of(-x)) * b[i];
  }
}

template <class T>
inline void backward_body(const T* a, const T* b, const T* dh, T* da, T* db, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T x = a[i], g = dh[i];
    const T sigmoid = T(1) / (T(1) + exp_of(-x));
    da[i] = g * b[i] * sigmoid * (T(1) + x * (T(1) - sigmoid));
    db[i] = g * x * sigmoid;
  }
}

constexpr int64_t kBlock = 512;

inline void widen(const c10::BFloat16* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
}
inline void narrow(const float* in, c10::BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<c10::BFloat16>(in[i]);
}

}  // namespace

MIXLAB_ISA_CLONES void forward(const float* a, const float* b, float* h, int64_t n) { forward_body(a, b, h, n); }
MIXLAB_ISA_CLONES void forward(const c10::BFloat16* a, const c10::BFloat16* b, c10::BFloat16* h, int64_t n) {
  alignas(64) float x[kBlock], y[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    widen(a + i, x, m), widen(b + i, y, m);
    forward_body(x, y, x, m);
    narrow(x, h + i, m);
  }
}
void forward(const double* a, const double* b, double* h, int64_t n) { forward_body(a, b, h, n); }

MIXLAB_ISA_CLONES void backward(const float* a, const float* b, const float* dh, float* da, float* db, int64_t n) {
  backward_body(a, b, dh, da, db, n);
}
MIXLAB_ISA_CLONES void backward(const c10::BFloat16* a, const c10::BFloat16* b, const c10::BFloat16* dh,
                                c10::BFloat16* da, c10::BFloat16* db, int64_t n) {
  alignas(64) float x[kBlock], y[kBlock], g[kBlock], dx[kBlock], dy[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    widen(a + i, x, m), widen(b + i, y, m), widen(dh + i, g, m);
    backward_body(x, y, g, dx, dy, m);
    narrow(dx, da + i, m), narrow(dy, db + i, m);
  }
}
void backward(const double* a, const double* b, const double* dh, double* da, double* db, int64_t n) {
  backward_body(a, b, dh, da, db, n);
}

}  // namespace mixlab::ffn::swiglu_loops
