// The sorted dispatch every sparse `moe` implementation shares: the kept (token,
// slot) assignments grouped by expert, their tokens gathered into one block, the
// block's results weighted back into the tokens. The implementations differ only
// in how they run the experts on the block (sparse.hpp).
#pragma once

#include "layer.hpp"

namespace mixlab::moe {

// The kept assignments grouped by expert: slot s = token · k + j.
struct Dispatch {
  torch::Tensor slots;          // (S,) int64, expert 0's slots first, token order within an expert
  std::vector<int64_t> counts;  // (E,) assignments per expert, summing to S
};

inline Dispatch sort_by_expert(const Routing& r, int64_t n_experts) {
  // Dropped slots get expert id E and sort last.
  auto slot_expert = r.experts.flatten().masked_fill(r.kept.flatten().logical_not(), n_experts);
  auto order = std::get<1>(torch::sort(slot_expert, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto counts = torch::bincount(slot_expert, {}, n_experts + 1).to(torch::kCPU);  // the one host sync per call
  const int64_t* count = counts.data_ptr<int64_t>();
  return {order.slice(0, 0, slot_expert.numel() - count[n_experts]),
          std::vector<int64_t>(count, count + n_experts)};
}

// The block (S, d): row i holds the token of slot d.slots[i]. Gathered from a
// per-slot copy of the tokens rather than by token index: the backward then
// scatters to distinct rows and sums over k, with no atomic adds on CUDA
// (bitwise deterministic).
inline torch::Tensor gather(const torch::Tensor& tokens, const Dispatch& d, int64_t k) {
  const int64_t n_tokens = tokens.size(0), d_model = tokens.size(1);
  auto slot_inputs = tokens.unsqueeze(1).expand({n_tokens, k, d_model}).reshape({n_tokens * k, d_model});
  return slot_inputs.index_select(0, d.slots);
}

// y (N, d): for each token, the sum over its slots of gate weight · the block row
// computed for that slot (0 for dropped slots). The write-back is a permutation
// (index_copy), not an index_add of duplicates.
inline torch::Tensor combine(const torch::Tensor& block, const Dispatch& d, const Routing& r, int64_t n_tokens) {
  const int64_t k = r.experts.size(1), d_model = block.size(1);
  auto slot_outputs = torch::zeros({n_tokens * k, d_model}, block.options()).index_copy(0, d.slots, block);
  auto weights = r.weights.to(block.scalar_type()).unsqueeze(-1);
  return (slot_outputs.view({n_tokens, k, d_model}) * weights).sum(1);
}

// A sparse `moe` implementation from a way to run the experts on the sorted block:
// Experts::run(block (S, d), counts, experts, cfg) returns (S, d), row i computed
// by the expert that row i was sent to. Work grows with top_k, not with E.
template <class Experts>
class MoeSorted : public MoeLayer {
 public:
  static ImplInfo info() { return Experts::info(); }
  using MoeLayer::MoeLayer;

  torch::Tensor routed_experts(const torch::Tensor& tokens, const Routing& r, const ExpertStack& e) const override {
    Dispatch d = sort_by_expert(r, cfg_.experts);
    auto block = gather(tokens, d, cfg_.top_k);
    if (block.size(0) > 0) block = Experts::run(block, d.counts, e, cfg_);  // empty when capacity dropped all
    return combine(block, d, r, tokens.size(0));
  }
};

}  // namespace mixlab::moe
