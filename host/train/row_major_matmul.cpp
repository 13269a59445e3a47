#include "train/row_major_matmul.hpp"

#include <ATen/Parallel.h>
#include <ATen/ops/mm_cpu_dispatch.h>
#include <c10/util/Exception.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace mixlab {
namespace {

// Blocks of kBlock x kBlock elements go to one thread; inside a block, 16 x 16 tiles.
constexpr int64_t kBlock = 64, kTile = 16;
// The copy pays where the row-major product is wide: with fewer columns than this, oneDNN's
// row-major rate on AMX is no higher than its transposed one and the copy is a loss (measured by
// bench/bench_weight_gradient at d_model 512 and 1024: 0.6-0.9x below 1024 columns, 1.3-1.6x from it).
constexpr int64_t kMinCopied = 64 * 64, kMinColumns = 1024;

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols.
void transpose_scalar(const uint16_t* src, int64_t src_stride, uint16_t* dst, int64_t dst_stride, int64_t rows,
                      int64_t cols) {
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) dst[j * dst_stride + i] = src[i * src_stride + j];
}

#if defined(__x86_64__)
// One 16 x 16 tile of 16-bit elements in AVX2 registers: three rounds of interleaving (16-, 32-,
// 64-bit pairs) and one of 128-bit lane exchange leave row k of the result in register kRow[k].
__attribute__((target("avx2"))) inline void transpose_tile_avx2(const uint16_t* src, int64_t src_stride,
                                                                 uint16_t* dst, int64_t dst_stride) {
  __m256i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * src_stride));
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm256_unpacklo_epi16(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi16(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 2; ++k) {
      r[4 * i + k] = _mm256_unpacklo_epi32(t[4 * i + k], t[4 * i + k + 2]);
      r[4 * i + k + 2] = _mm256_unpackhi_epi32(t[4 * i + k], t[4 * i + k + 2]);
    }
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      t[8 * i + k] = _mm256_unpacklo_epi64(r[8 * i + k], r[8 * i + k + 4]);
      t[8 * i + k + 4] = _mm256_unpackhi_epi64(r[8 * i + k], r[8 * i + k + 4]);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm256_permute2x128_si256(t[k], t[k + 8], 0x20);
    r[k + 8] = _mm256_permute2x128_si256(t[k], t[k + 8], 0x31);
  }
  static constexpr int kRow[16] = {0, 4, 2, 6, 1, 5, 3, 7, 8, 12, 10, 14, 9, 13, 11, 15};
  for (int k = 0; k < 16; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + kRow[k] * dst_stride), r[k]);
}

__attribute__((target("avx2"))) void transpose_block_avx2(const uint16_t* src, int64_t src_stride, uint16_t* dst,
                                                           int64_t dst_stride, int64_t rows, int64_t cols) {
  const int64_t full_rows = rows / kTile * kTile, full_cols = cols / kTile * kTile;
  for (int64_t i = 0; i < full_rows; i += kTile)
    for (int64_t j = 0; j < full_cols; j += kTile)
      transpose_tile_avx2(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride);
  // The ragged right and bottom edges, element by element.
  transpose_scalar(src + full_cols, src_stride, dst + full_cols * dst_stride, dst_stride, rows, cols - full_cols);
  transpose_scalar(src + full_rows * src_stride, src_stride, dst + full_rows, dst_stride, rows - full_rows,
                   full_cols);
}

// Asked when first needed, after __builtin_cpu_init: a static initializer may run before libgcc
// has read the CPU's features.
bool has_avx2() {
  static const bool has = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
  return has;
}
#endif

void transpose_block(const uint16_t* src, int64_t src_stride, uint16_t* dst, int64_t dst_stride, int64_t rows,
                     int64_t cols) {
#if defined(__x86_64__)
  if (has_avx2()) return transpose_block_avx2(src, src_stride, dst, dst_stride, rows, cols);
#endif
  transpose_scalar(src, src_stride, dst, dst_stride, rows, cols);
}

bool column_major(const torch::Tensor& t) {
  return t.dim() == 2 && t.size(0) > 1 && t.size(1) > 1 && t.stride(0) == 1 && t.stride(1) >= t.size(0);
}

// Whether a·b takes the row-major route.
bool copies(const torch::Tensor& a, const torch::Tensor& b) {
  return a.scalar_type() == torch::kBFloat16 && b.scalar_type() == torch::kBFloat16 && column_major(a) &&
         b.dim() == 2 && a.numel() >= kMinCopied && b.size(1) >= kMinColumns;
}

// aten::mm.out, what at::_grouped_mm calls per group on the CPU (a mixture of experts' weight gradients).
torch::Tensor& mm_out_row_major_operands(const torch::Tensor& a, const torch::Tensor& b, torch::Tensor& out) {
  return at::cpu::mm_out(out, copies(a, b) ? row_major_copy(a) : a, b);
}

}  // namespace

torch::Tensor row_major_copy(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() == 2 && t.element_size() == 2 && t.device().is_cpu(),
              "row_major_copy: a 2-D CPU tensor of 16-bit elements is expected, got ", t.sizes(), " ", t.dtype());
  if (!column_major(t)) return t.contiguous();
  // t (m x n) is column-major: its transpose (n x m) has rows of stride t.stride(1).
  const int64_t m = t.size(0), n = t.size(1), src_stride = t.stride(1);
  auto out = torch::empty({m, n}, t.options());
  const auto* src = static_cast<const uint16_t*>(t.const_data_ptr());
  auto* dst = static_cast<uint16_t*>(out.mutable_data_ptr());
  const int64_t row_blocks = (n + kBlock - 1) / kBlock, col_blocks = (m + kBlock - 1) / kBlock;
  at::parallel_for(0, row_blocks * col_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t i = b / col_blocks * kBlock, j = b % col_blocks * kBlock;  // a block of tᵀ
      transpose_block(src + i * src_stride + j, src_stride, dst + j * n + i, n, std::min(kBlock, n - i),
                      std::min(kBlock, m - j));
    }
  });
  return out;
}

torch::Tensor mm_row_major_operands(const torch::Tensor& a, const torch::Tensor& b) {
  return at::cpu::mm(copies(a, b) ? row_major_copy(a) : a, b);
}

RowMajorMatmulScope::RowMajorMatmulScope(bool enabled) {
  if (!enabled) return;
  // The dispatcher warns that a kernel replaces ATen's: expected here, so not shown.
  struct Quiet : c10::WarningHandler {
    void process(const c10::Warning&) override {}
  } quiet;
  c10::WarningUtils::WarningHandlerGuard guard(&quiet);
  registration_ = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__,
                                                   __LINE__);
  registration_->impl("mm", TORCH_FN(mm_row_major_operands));
  registration_->impl("mm.out", TORCH_FN(mm_out_row_major_operands));
}

RowMajorMatmulScope::~RowMajorMatmulScope() = default;

}  // namespace mixlab
