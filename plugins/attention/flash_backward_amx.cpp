#include "flash_backward_amx.hpp"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

// x86-64 with LibTorch's brgemm API for bfloat16: otherwise the kernel is not built and
// amx_attention_backward_available() says so.
#if defined(__x86_64__) && defined(CPUBLAS_BRGEMM_BF16BF16F32)
#define MIXLAB_ATTENTION_AMX 1
#include <fbgemm/Utils.h>
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace mixlab::attention {

#ifdef MIXLAB_ATTENTION_AMX
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,fma")
// SLEEF's float32 exp, 16 lanes (libtorch_cpu exports it; sleef.h declares it only under -mavx512f).
extern "C" __m512 Sleef_expf16_u10(__m512);
#pragma GCC pop_options

namespace {

using at::BFloat16;
namespace cpublas = at::native::cpublas;

constexpr int64_t kTile = 64;   // query and key rows per tile
constexpr int64_t kPanel = 64;  // widest B operand oneDNN packs (16, 32, 48 or 64 columns)

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Rows [0, rows) x columns [0, cols) of a row-major matrix with row stride `ld`, into a
// padded_rows x padded_cols contiguous block, zero outside.
void copy_padded(const BFloat16* src, int64_t ld, int64_t rows, int64_t cols, BFloat16* dst, int64_t padded_rows,
                 int64_t padded_cols) {
  for (int64_t r = 0; r < padded_rows; ++r) {
    BFloat16* row = dst + r * padded_cols;
    const int64_t n = r < rows ? cols : 0;
    if (n) std::memcpy(row, src + r * ld, n * sizeof(BFloat16));
    std::memset(static_cast<void*>(row + n), 0, (padded_cols - n) * sizeof(BFloat16));
  }
}

// Lays out a contiguous K x N block (N a multiple of 16, at most 64; K even) as brgemm's B
// operand: oneDNN's VNNI packing.
void pack_panel(const BFloat16* block, int64_t K, int64_t N, BFloat16* dst) {
  cpublas::pack(K, N, N, N, at::kBFloat16, at::kBFloat16, block, dst);
}

// Whether this LibTorch's brgemm takes the layout of B (`is_vnni`, its last argument): headers
// from before that argument build the plugin without the kernel.
template <class Scalar>
concept BrgemmWithLayout = requires(const Scalar* ab, float* c) {
  cpublas::brgemm(int64_t{}, int64_t{}, int64_t{}, int64_t{}, int64_t{}, int64_t{}, bool{}, ab, ab, c, bool{});
};

// C (M x N, float32, row stride ldc) = A (M x K, row stride lda) B (packed K x N), or += when
// `accumulate`.
template <class Scalar>
void product(int64_t M, int64_t N, int64_t K, const Scalar* A, int64_t lda, const Scalar* B, float* C, int64_t ldc,
             bool accumulate) {
  if constexpr (BrgemmWithLayout<Scalar>)
    cpublas::brgemm(M, N, K, lda, /*ld_b=*/N, ldc, accumulate, A, B, C, /*is_vnni=*/true);
  else
    TORCH_CHECK(false, "causal_attention_backward_amx: this LibTorch's brgemm takes no B layout");
}

// dst (cols x rows, row stride ld_dst) = the transpose of src (rows x cols, row stride ld_src).
void transpose(const BFloat16* src, int64_t rows, int64_t cols, int64_t ld_src, BFloat16* dst, int64_t ld_dst) {
  fbgemm::transpose_simd<uint16_t>(rows, cols, reinterpret_cast<const uint16_t*>(src), ld_src,
                                   reinterpret_cast<uint16_t*>(dst), ld_dst);
}

// The vector helpers below, compiled for AVX-512 whatever the build's flags: they run only where
// amx_attention_backward_available() holds (AMX brings AVX-512 and its bfloat16 conversions).
#define MIXLAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))

MIXLAB_AVX512 __m512 load_bfloat16(const BFloat16* x) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// Σ_d a[d] b[d] for n a multiple of 16, in float32.
MIXLAB_AVX512 float dot(const BFloat16* a, const BFloat16* b, int64_t n) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t d = 0; d < n; d += 16) sum = _mm512_fmadd_ps(load_bfloat16(a + d), load_bfloat16(b + d), sum);
  return _mm512_reduce_add_ps(sum);
}

// dst[0, n) = bfloat16(factor src[0, n)), rounded to nearest even.
MIXLAB_AVX512 void round_scaled(const float* src, int64_t n, float factor, BFloat16* dst) {
  const __m512 f = _mm512_set1_ps(factor);
  for (int64_t d = 0; d < n; d += 16) {
    const auto lanes = static_cast<__mmask16>((1u << std::min<int64_t>(n - d, 16)) - 1);
    const __m256bh x = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, src + d), f));
    _mm256_mask_storeu_epi16(dst + d, lanes, reinterpret_cast<const __m256i&>(x));
  }
}

// One 64 x 64 tile of scores S and dP = dO V^T (float32, row-major) into P = exp(scale S - L) and
// dS = P (dP - delta), rounded to bfloat16. Rows from `rows` on are padding and, on the diagonal
// tile, columns past the row are in the future: both are zero in P and dS.
MIXLAB_AVX512 void softmax_gradient_tile(
    const float* s, const float* dp, const float* lse, const float* delta, float scale, int64_t rows, bool diagonal,
    BFloat16* p, BFloat16* ds) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < kTile; ++r) {
    const int64_t visible = r >= rows ? 0 : diagonal ? r + 1 : kTile;
    const __m512 l = _mm512_set1_ps(lse[r]), d = _mm512_set1_ps(delta[r]);
    for (int64_t c = 0; c < kTile; c += 16) {
      const int64_t n = std::clamp<int64_t>(visible - c, 0, 16);
      const auto lanes = static_cast<__mmask16>((1u << n) - 1);
      const int64_t at = r * kTile + c;
      const __m512 pv =
          _mm512_maskz_mov_ps(lanes, Sleef_expf16_u10(_mm512_fmsub_ps(_mm512_loadu_ps(s + at), vscale, l)));
      const __m512 dsv = _mm512_mul_ps(pv, _mm512_sub_ps(_mm512_loadu_ps(dp + at), d));
      const __m256bh pb = _mm512_cvtneps_pbh(pv), dsb = _mm512_cvtneps_pbh(dsv);
      std::memcpy(p + at, &pb, sizeof(pb));
      std::memcpy(ds + at, &dsb, sizeof(dsb));
    }
  }
}

// One (batch, head): T x D row-major matrices with row strides.
struct Head {
  const BFloat16 *q, *k, *v, *out, *dout;
  int64_t ld_q, ld_k, ld_v, ld_out, ld_dout;
  const float* lse;
  int64_t lse_stride;
  BFloat16 *dq, *dk, *dv;  // contiguous T x D
};

// A thread's buffers, sized for Tp = T rounded up to 64 and Dp = D rounded up to 16.
struct Workspace {
  int64_t T, D, Tp, Dp;
  // Zero-padded Tp x Dp copies of q, k, v, O, dO (the A operands and the source of the panels).
  std::vector<BFloat16> q, k, v, out, dout;
  // Packed B operands: per key tile, K^T and V^T (Dp x 64) and K (64 x Dp, in panels of 64
  // columns); per query tile, Q and dO (64 x Dp, in panels).
  std::vector<BFloat16> kt_packed, vt_packed, k_packed, q_packed, dout_packed;
  std::vector<BFloat16> block;                    // one block on its way to pack_panel
  std::vector<BFloat16> p, pt, ds, dst;           // 64 x 64: P, P^T, dS, dS^T
  std::vector<float> s, dp, dk, dv, dq, lse, delta;

  Workspace(int64_t T_, int64_t D_) : T(T_), D(D_), Tp(round_up(T_, kTile)), Dp(round_up(D_, 16)) {
    for (auto* b : {&q, &k, &v, &out, &dout, &kt_packed, &vt_packed, &k_packed, &q_packed, &dout_packed})
      b->resize(static_cast<size_t>(Tp * Dp));
    block.resize(static_cast<size_t>(std::max(Dp, kTile) * kPanel));
    for (auto* b : {&p, &pt, &ds, &dst}) b->resize(static_cast<size_t>(kTile * kTile));
    for (auto* b : {&s, &dp}) b->resize(static_cast<size_t>(kTile * kTile));
    for (auto* b : {&dk, &dv}) b->resize(static_cast<size_t>(kTile * Dp));
    dq.resize(static_cast<size_t>(Tp * Dp));
    lse.resize(static_cast<size_t>(Tp));
    delta.resize(static_cast<size_t>(Tp));
  }

  // Rows [r0, r0 + 64) of a padded copy as 64 x Dp panels of at most 64 columns, one after another.
  void pack_rows(const std::vector<BFloat16>& src, int64_t r0, BFloat16* dst) {
    for (int64_t c = 0; c < Dp; c += kPanel) {
      const int64_t w = std::min(kPanel, Dp - c);
      for (int64_t r = 0; r < kTile; ++r)
        std::memcpy(block.data() + r * w, src.data() + (r0 + r) * Dp + c, w * sizeof(BFloat16));
      pack_panel(block.data(), kTile, w, dst + c * kTile);
    }
  }

  // Rows [r0, r0 + 64) of a padded copy, transposed: one Dp x 64 panel.
  void pack_rows_transposed(const std::vector<BFloat16>& src, int64_t r0, BFloat16* dst) {
    transpose(src.data() + r0 * Dp, kTile, Dp, Dp, block.data(), kTile);
    pack_panel(block.data(), Dp, kTile, dst);
  }

  void load(const Head& h) {
    copy_padded(h.q, h.ld_q, T, D, q.data(), Tp, Dp);
    copy_padded(h.k, h.ld_k, T, D, k.data(), Tp, Dp);
    copy_padded(h.v, h.ld_v, T, D, v.data(), Tp, Dp);
    copy_padded(h.out, h.ld_out, T, D, out.data(), Tp, Dp);
    copy_padded(h.dout, h.ld_dout, T, D, dout.data(), Tp, Dp);
    for (int64_t t0 = 0; t0 < Tp; t0 += kTile) {
      pack_rows_transposed(k, t0, kt_packed.data() + t0 * Dp);
      pack_rows_transposed(v, t0, vt_packed.data() + t0 * Dp);
      pack_rows(k, t0, k_packed.data() + t0 * Dp);
      pack_rows(q, t0, q_packed.data() + t0 * Dp);
      pack_rows(dout, t0, dout_packed.data() + t0 * Dp);
    }
    // Padding rows: an L no score reaches (P = 0) and delta = 0.
    for (int64_t t = 0; t < Tp; ++t) {
      lse[t] = t < T ? h.lse[t * h.lse_stride] : std::numeric_limits<float>::max();
      delta[t] = dot(dout.data() + t * Dp, out.data() + t * Dp, Dp);
    }
  }

  // Writes rows [r0, r0 + 64) of a float32 Tp-or-64-row accumulator (row stride Dp), times
  // `factor`, to the first T rows and D columns of a contiguous T x D output.
  void store(const float* acc, int64_t r0, float factor, BFloat16* dst) const {
    for (int64_t r = r0; r < std::min(T, r0 + kTile); ++r) round_scaled(acc + (r - r0) * Dp, D, factor, dst + r * D);
  }

  void backward(const Head& h, float scale) {
    load(h);
    const int64_t chunks = (Dp + kPanel - 1) / kPanel;
    for (int64_t j = 0; j < Tp; j += kTile) {      // key tile
      for (int64_t i = j; i < Tp; i += kTile) {    // query tiles that see it
        product(kTile, kTile, Dp, q.data() + i * Dp, Dp, kt_packed.data() + j * Dp, s.data(), kTile, false);
        product(kTile, kTile, Dp, dout.data() + i * Dp, Dp, vt_packed.data() + j * Dp, dp.data(), kTile, false);
        softmax_gradient_tile(s.data(), dp.data(), lse.data() + i, delta.data() + i, scale, T - i, i == j, p.data(),
                              ds.data());
        transpose(p.data(), kTile, kTile, kTile, pt.data(), kTile);
        transpose(ds.data(), kTile, kTile, kTile, dst.data(), kTile);
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t w = std::min(kPanel, Dp - c * kPanel), panel = i * Dp + c * kPanel * kTile;
          product(kTile, w, kTile, pt.data(), kTile, dout_packed.data() + panel, dv.data() + c * kPanel, Dp, i > j);
          product(kTile, w, kTile, dst.data(), kTile, q_packed.data() + panel, dk.data() + c * kPanel, Dp, i > j);
          product(kTile, w, kTile, ds.data(), kTile, k_packed.data() + j * Dp + c * kPanel * kTile,
                  dq.data() + i * Dp + c * kPanel, Dp, j > 0);
        }
      }
      store(dk.data(), j, scale, h.dk);
      store(dv.data(), j, 1.0f, h.dv);
    }
    for (int64_t i = 0; i < Tp; i += kTile) store(dq.data() + i * Dp, i, scale, h.dq);
  }
};

#undef MIXLAB_AVX512

}  // namespace

bool amx_attention_backward_available() {
  return BrgemmWithLayout<BFloat16> && cpublas::could_pack(at::kBFloat16);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> causal_attention_backward_amx(
    const torch::Tensor& dout, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
    const torch::Tensor& out, const torch::Tensor& lse, double scale) {
  TORCH_CHECK(amx_attention_backward_available(), "causal_attention_backward_amx: this CPU has no AMX");
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  for (const auto* t : {&dout, &q, &k, &v, &out})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == torch::kBFloat16 && t->sizes() == q.sizes(),
                "causal_attention_backward_amx: bfloat16 CPU tensors of q's shape expected, got ", t->scalar_type(),
                " ", t->sizes());
  TORCH_CHECK(lse.scalar_type() == torch::kFloat32 && lse.sizes() == q.sizes().slice(0, 3),
              "causal_attention_backward_amx: float32 lse (B, H, T) expected, got ", lse.sizes());
  auto dq = torch::empty({B, H, T, D}, q.options()), dk = torch::empty_like(dq), dv = torch::empty_like(dq);
  // Rows are read with their strides; only D must be contiguous.
  auto rows = [](const torch::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const auto q_ = rows(q), k_ = rows(k), v_ = rows(v), out_ = rows(out), dout_ = rows(dout);
  auto base = [](const torch::Tensor& t, int64_t b, int64_t h) {
    return t.const_data_ptr<BFloat16>() + b * t.stride(0) + h * t.stride(1);
  };
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    Workspace ws(T, D);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, o = bh * T * D;
      Head head{base(q_, b, h),
                base(k_, b, h),
                base(v_, b, h),
                base(out_, b, h),
                base(dout_, b, h),
                q_.stride(2),
                k_.stride(2),
                v_.stride(2),
                out_.stride(2),
                dout_.stride(2),
                lse.const_data_ptr<float>() + b * lse.stride(0) + h * lse.stride(1),
                lse.stride(2),
                dq.data_ptr<BFloat16>() + o,
                dk.data_ptr<BFloat16>() + o,
                dv.data_ptr<BFloat16>() + o};
      ws.backward(head, static_cast<float>(scale));
    }
    cpublas::brgemm_release();
  });
  return {dq, dk, dv};
}

#else  // no AMX kernel in this build

bool amx_attention_backward_available() { return false; }

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> causal_attention_backward_amx(
    const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
    const torch::Tensor&, double) {
  TORCH_CHECK(false, "causal_attention_backward_amx: not built for this platform or LibTorch");
}

#endif

}  // namespace mixlab::attention
