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
    auto i = detail::sparse_info("grouped", "1.2.0",
                                 "mixture of experts: tokens sorted by expert, each projection one grouped matmul "
                                 "(at::_grouped_mm; float64 through the per-expert loop)");
    // What an experiment gets without impl = "...": nothing padded, so its work follows the routing
    // (in a d_model 512 Mixtral-style step 1.61x the tokens/s of `sparse`, whose padding to the
    // largest group grows with the router's imbalance; bench/README.md).
    i.caps |= MIXLAB_CAP_PREFERRED;
    return i;
  }
  static torch::Tensor run(const torch::Tensor& block, const std::vector<int64_t>& counts, const ExpertStack& e,
                           const MoeConfig& cfg) {
    const auto device = block.device().type();
    const bool autocast = at::autocast::is_autocast_enabled(device) && block.is_floating_point();
    const auto dtype = autocast ? at::autocast::get_autocast_dtype(device) : block.scalar_type();
    const int64_t bytes = c10::elementSize(dtype);
    if (dtype == torch::kFloat64 || cfg.d_model * bytes % 16 != 0 || cfg.expert_hidden * bytes % 16 != 0)
      return ExpertLoop::run(block, counts, e, cfg);
    auto operand = [&](const torch::Tensor& t) { return autocast ? at::autocast::cached_cast(dtype, t, device) : t; };
    std::vector<int32_t> ends;
    int64_t end = 0;
    for (int64_t c : counts) ends.push_back(static_cast<int32_t>(end += c));
    auto offs = torch::tensor(ends, torch::kInt32).to(block.device());
    auto grouped = [&](const torch::Tensor& v, const torch::Tensor& w, const torch::Tensor&) {
      return at::_grouped_mm(v, operand(w).transpose(-1, -2), offs);
    };
    torch::Tensor none;  // the rows cast once; the hidden activations come out in the cast dtype
    return ffn::apply_with(grouped, operand(block), cfg.activation, cfg.kernels, e.w_in, none, e.w_gate, none,
                           e.w_out, none);
  }
};

// Each expert's rows copied into a zero-padded (E, M, d) batch, M the largest
// count, run as one bmm per projection, and the real rows read back. Padding rows
// are zero, give zero, and are never read: wasted work is E·M - S rows, bounded by
// the capacity when one is set.
struct PaddedBatch {
  static ImplInfo info() {
    return detail::sparse_info("sparse", "1.2.0",
                               "mixture of experts: tokens sorted by expert, groups padded to the largest, one "
                               "batched matmul per projection");
  }
  static torch::Tensor run(const torch::Tensor& block, const std::vector<int64_t>& counts, const ExpertStack& e,
                           const MoeConfig& cfg) {
    const int64_t n_experts = static_cast<int64_t>(counts.size()), d_model = block.size(1);
    const int64_t m = *std::max_element(counts.begin(), counts.end());
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
