// `moe` / `sparse`: the (token, slot) assignments are sorted by expert, each
// expert runs once on the tokens it received, the results go back to their
// slots. Work grows with top_k, not with the number of experts.
#pragma once

#include "layer.hpp"

namespace mixlab::moe {

class MoeSparse : public MoeLayer {
 public:
  // A token's output is exact up to rounding only: the matmul that computes it
  // also holds the other tokens routed to the same expert, and BLAS kernels
  // differ with the row count. Declared as the FFN locality bound.
  static ImplInfo info() {
    ImplInfo i{MIXLAB_FAMILY_FFN, "moe", "sparse", "1.0.0",
               "mixture of experts: tokens gathered per expert, only the selected experts computed"};
    i.causality_bound = 1e-12;
    i.caps |= MIXLAB_CAP_PREFERRED;  // what an experiment gets without impl = "...": work grows with top_k only
    return i;
  }
  using MoeLayer::MoeLayer;

  torch::Tensor routed_experts(const torch::Tensor& tokens, const Routing& r, const ExpertStack& e) const override {
    const int64_t n_tokens = tokens.size(0), k = cfg_.top_k, n_experts = cfg_.experts;
    // Slot s = token · k + j. Dropped slots get expert id E and sort last.
    auto slot_expert = r.experts.flatten().masked_fill(r.kept.flatten().logical_not(), n_experts);
    auto order = std::get<1>(torch::sort(slot_expert, /*stable=*/true, /*dim=*/0, /*descending=*/false));
    auto counts = torch::bincount(slot_expert, {}, n_experts + 1).to(torch::kCPU);
    auto count = counts.accessor<int64_t, 1>();
    auto kept_slots = order.slice(0, 0, n_tokens * k - count[n_experts]);

    // Gather one row per slot from a per-slot copy of the tokens rather than by
    // token index: the backward then scatters to distinct rows and sums over k,
    // with no atomic adds on CUDA (bitwise deterministic).
    auto slot_inputs = tokens.unsqueeze(1).expand({n_tokens, k, cfg_.d_model}).reshape({n_tokens * k, cfg_.d_model});
    auto gathered = slot_inputs.index_select(0, kept_slots);

    // unbind: one backward node for the whole stack (select would build E full-size zero gradients).
    auto w_in = e.w_in.unbind(0), w_out = e.w_out.unbind(0);
    auto w_gate = e.w_gate.defined() ? e.w_gate.unbind(0) : std::vector<torch::Tensor>(n_experts);
    std::vector<torch::Tensor> outputs;
    int64_t start = 0;
    torch::Tensor none;
    for (int64_t i = 0; i < n_experts; ++i) {
      if (count[i] == 0) continue;
      outputs.push_back(ffn::apply(gathered.narrow(0, start, count[i]), cfg_.activation, w_in[i], none, w_gate[i],
                                   none, w_out[i], none));
      start += count[i];
    }
    auto slot_outputs = torch::zeros({n_tokens * k, cfg_.d_model}, tokens.options());
    if (!outputs.empty()) slot_outputs = slot_outputs.index_copy(0, kept_slots, torch::cat(outputs));
    auto weights = r.weights.to(tokens.scalar_type()).unsqueeze(-1);
    return (slot_outputs.view({n_tokens, k, cfg_.d_model}) * weights).sum(1);
  }
};

}  // namespace mixlab::moe
