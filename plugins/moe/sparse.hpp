// The sparse `moe` implementations: the sorted dispatch (dispatch.hpp) with three
// ways to run the experts on the block of S rows grouped by expert.
//   loop:    one FFN per expert on its rows (E small matmul chains, E autograd nodes each)
//   grouped: LibTorch's grouped matrix multiply with group offsets (at::_grouped_mm)
//   sparse:  the groups padded to the largest and run as one batched matmul (bmm)
#pragma once

#include "dispatch.hpp"

#include <ATen/autocast_mode.h>

#include <algorithm>

namespace mixlab::moe {

namespace detail {
// A token's output is exact up to rounding only: the matmul that computes it also
// holds the other tokens routed to the same expert, and BLAS kernels differ with
// the row count. Declared as the FFN locality bound.
inline ImplInfo sparse_info(const char* impl, const char* version, const char* description) {
  ImplInfo i{MIXLAB_FAMILY_FFN, "moe", impl, version, description};
  i.causality_bound = 1e-12;
  return i;
}

// oneDNN, LibTorch's CPU GEMM in bfloat16 and float16, compiles a kernel for every new product
// shape (milliseconds each, cached by shape), and an expert's row count changes from step to step.
// So with kernels = "fused" each group there is rounded up to a multiple of kGroupRows rows of
// zeros, and the few shapes that remain are compiled once: a d_model 1024 grouped matmul with 4
// experts ran 3.5x faster (bench/README.md). Zero rows give zero outputs and zero gradients, and
// are never read. Elsewhere (float32, CUDA) the shape costs nothing and nothing is padded.
constexpr int64_t kGroupRows = 64;

inline int64_t group_rows(const torch::Tensor& block, torch::ScalarType dtype, ffn::Kernels kernels) {
  const bool compiled_per_shape = block.device().is_cpu() && (dtype == torch::kBFloat16 || dtype == torch::kHalf);
  return kernels == ffn::Kernels::fused && compiled_per_shape ? kGroupRows : 1;
}

inline int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

inline bool autocasts(const torch::Tensor& block) {
  return at::autocast::is_autocast_enabled(block.device().type()) && block.is_floating_point();
}

// The dtype the experts multiply in: autocast's when it is on, else the rows'.
inline torch::ScalarType product_dtype(const torch::Tensor& block) {
  return autocasts(block) ? at::autocast::get_autocast_dtype(block.device().type()) : block.scalar_type();
}
}  // namespace detail

struct ExpertLoop {
  static ImplInfo info() {
    return detail::sparse_info("loop", "1.1.0",
                               "mixture of experts: tokens gathered per expert, one FFN call per expert");
  }
  static torch::Tensor run(const torch::Tensor& block, const std::vector<int64_t>& counts, const ExpertStack& e,
                           const MoeConfig& cfg) {
    // unbind: one backward node for the whole stack (select would build E full-size zero gradients).
    auto w_in = e.w_in.unbind(0), w_out = e.w_out.unbind(0);
    auto w_gate = e.w_gate.defined() ? e.w_gate.unbind(0) : std::vector<torch::Tensor>(counts.size());
    std::vector<torch::Tensor> outputs;
    int64_t start = 0;
    torch::Tensor none;
    for (size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] == 0) continue;
      outputs.push_back(ffn::apply(block.narrow(0, start, counts[i]), cfg.activation, cfg.kernels, w_in[i], none,
                                   w_gate[i], none, w_out[i], none));
      start += counts[i];
    }
    return torch::cat(outputs);
  }
};

// at::_grouped_mm(x (S, d), w (E, d, h), offs): rows offs[i-1]..offs[i] times w[i].
// On CUDA it is one grouped kernel; on CPU LibTorch 2.15 runs it as a loop of mm
// calls, but with one autograd node. It takes float32, bfloat16 and float16 rows
// whose byte strides are multiples of 16; anything else (float64, the checks'
// dtype; widths such as 44 in bfloat16) runs the loop instead. Autocast has no
// rule for it, so under autocast its operands are cast here as linear's would be
// (the weights through autocast's per-step cache): without this the experts of a
// bfloat16 run multiplied in float32 (bench/README.md).
struct GroupedGemm {
  static ImplInfo info() {
    auto i = detail::sparse_info("grouped", "1.3.0",
                                 "mixture of experts: tokens sorted by expert, each projection one grouped matmul "
                                 "(at::_grouped_mm; float64 through the per-expert loop)");
    // What an experiment gets without impl = "...": at most 63 rows padded per expert, so its work
    // follows the routing (in a d_model 512 Mixtral-style step 1.61x the tokens/s of `sparse`, whose
    // padding to the largest group grows with the router's imbalance; bench/README.md).
    i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }
  static torch::Tensor run(const torch::Tensor& block, const std::vector<int64_t>& counts, const ExpertStack& e,
                           const MoeConfig& cfg) {
    const auto device = block.device().type();
    const bool autocast = detail::autocasts(block);
    const auto dtype = detail::product_dtype(block);
    const int64_t bytes = c10::elementSize(dtype);
    if (dtype == torch::kFloat64 || cfg.d_model * bytes % 16 != 0 || cfg.expert_hidden * bytes % 16 != 0)
      return ExpertLoop::run(block, counts, e, cfg);
    auto operand = [&](const torch::Tensor& t) { return autocast ? at::autocast::cached_cast(dtype, t, device) : t; };
    const int64_t multiple = detail::group_rows(block, dtype, cfg.kernels);
    std::vector<int32_t> ends;
    std::vector<int64_t> rows;  // block row -> row of the padded block (only when padding)
    int64_t end = 0;
    for (int64_t c : counts) {
      for (int64_t j = 0; multiple > 1 && j < c; ++j) rows.push_back(end + j);
      ends.push_back(static_cast<int32_t>(end += detail::round_up(c, multiple)));
    }
    auto offs = torch::tensor(ends, torch::kInt32).to(block.device());
    auto grouped = [&](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor&) {
      return at::_grouped_mm(v, operand(w).transpose(-1, -2), offs);
    };
    torch::Tensor none, index;  // the rows cast once; the hidden activations come out in the cast dtype
    auto input = operand(block);
    if (multiple > 1) {
      index = torch::tensor(rows, torch::kInt64).to(block.device());
      input = torch::zeros({end, input.size(1)}, input.options()).index_copy(0, index, input);
    }
    auto out =
        ffn::apply_with(grouped, input, cfg.activation, cfg.kernels, e.w_in, none, e.w_gate, none, e.w_out, none);
    return multiple > 1 ? out.index_select(0, index) : out;
  }
};

// Each expert's rows copied into a zero-padded (E, M, d) batch, M the largest
// count (rounded up as grouped's groups are), run as one bmm per projection, and
// the real rows read back. Padding rows are zero, give zero, and are never read:
// wasted work is E·M - S rows, bounded by the capacity when one is set.
struct PaddedBatch {
  static ImplInfo info() {
    return detail::sparse_info("sparse", "1.3.0",
                               "mixture of experts: tokens sorted by expert, groups padded to the largest, one "
                               "batched matmul per projection");
  }
  static torch::Tensor run(const torch::Tensor& block, const std::vector<int64_t>& counts, const ExpertStack& e,
                           const MoeConfig& cfg) {
    const int64_t n_experts = static_cast<int64_t>(counts.size()), d_model = block.size(1);
    const int64_t m = detail::round_up(*std::max_element(counts.begin(), counts.end()),
                                       detail::group_rows(block, detail::product_dtype(block), cfg.kernels));
    std::vector<int64_t> rows;  // block row -> padded row (expert · M + place in its group)
    rows.reserve(static_cast<size_t>(block.size(0)));
    for (int64_t i = 0; i < n_experts; ++i)
      for (int64_t j = 0; j < counts[static_cast<size_t>(i)]; ++j) rows.push_back(i * m + j);
    auto index = torch::tensor(rows, torch::kInt64).to(block.device());
    auto padded = torch::zeros({n_experts * m, d_model}, block.options()).index_copy(0, index, block);
    auto out = ffn::apply_stacked(padded.view({n_experts, m, d_model}), cfg.activation, cfg.kernels, e.w_in,
                                  e.w_gate, e.w_out);
    return out.view({n_experts * m, d_model}).index_select(0, index);
  }
};

using MoeLoop = MoeSorted<ExpertLoop>;
using MoeGrouped = MoeSorted<GroupedGemm>;
using MoeSparse = MoeSorted<PaddedBatch>;

}  // namespace mixlab::moe
