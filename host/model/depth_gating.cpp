#include "model/depth_gating.hpp"

#include <algorithm>
#include <cmath>

namespace mixlab {

int64_t routed_tokens(double capacity, int64_t seq_len) {
  // The small margin keeps a product such as 0.3 * 10 = 3.0000000000000004 at 3.
  const auto k = static_cast<int64_t>(std::ceil(capacity * static_cast<double>(seq_len) - 1e-9));
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(seq_len, 1));
}

int64_t depth_router_params(int64_t d_model) { return d_model + 1; }

Route route_of(const torch::Tensor& passing) {
  const int64_t B = passing.size(0), T = passing.size(1);
  auto position = torch::arange(T, passing.options().dtype(torch::kInt64)).expand({B, T});
  // Sorting by this key puts the passing positions first, each group in sequence order.
  auto key = torch::where(passing, position, position + T);
  auto order = std::get<1>(key.sort(1));
  auto count = passing.sum(1);
  const int64_t K = B == 0 ? 0 : count.max().item<int64_t>();
  auto slot = torch::arange(K, count.options()).unsqueeze(0);
  return Route{order.narrow(1, 0, K), (slot < count.unsqueeze(1)).to(torch::kFloat32)};
}

namespace {

class DepthGatedBlock final : public Block {
 public:
  DepthGatedBlock(size_t index, const DepthGating& gating, std::unique_ptr<Block> inner, const BlockContext& context)
      : prefix_("layers." + std::to_string(index)), gating_(gating), inner_(std::move(inner)), context_(context) {}

  std::string input_norm() const override { return inner_->input_norm(); }
  std::vector<std::string> norms() const override { return inner_->norms(); }

  std::vector<BlockParam> extra_params(uint64_t seed, double init_std) const override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto weight = torch::empty({1, context_.model().d_model}, torch::kFloat32).normal_(0.0, init_std, gen);
    auto out = inner_->extra_params(seed + 0x9e3779b97f4a7c15ull, init_std);  // the block's own (a merge's)
    out.push_back({prefix_ + ".router.weight", weight, true});
    out.push_back({prefix_ + ".router.bias", torch::zeros({1}), false});
    return out;
  }

  Stream forward(const Stream& in, const std::string& next_norm, const BlockCall& call) const override {
    const int64_t T = in.h.size(1);
    auto logits = router(in.x);
    auto top = std::get<1>(logits.topk(routed_tokens(gating_.capacity, T), 1));
    auto top_k = torch::zeros_like(logits, torch::kBool).scatter(1, top, true);
    auto route = route_of(call.training ? top_k : logits > 0);
    // The block's plugins run on the passing tokens only; their per-token statistics would not
    // line up with the sequence, so only their scalar side outputs are kept.
    std::vector<SideOutput> inner_sides;
    BlockCall inner_call{call.training, call.seed, &inner_sides, call.aux_loss};
    auto branch = routed_update(in, logits, route, [&](const Stream& selected) {
      return inner_->forward(selected, "", inner_call).h;
    });
    for (auto& side : inner_sides)
      if (!side.per_token) call.sides->push_back(std::move(side));
    auto [sum, normed] = context_.add_norm(in.h, branch, next_norm);
    const std::string name = prefix_ + ".depth_gating/";
    call.record({name + "aux_loss", torch::binary_cross_entropy_with_logits(logits, top_k.to(logits.scalar_type())),
                 gating_.aux_loss, true});
    call.record({name + "routed_share", route.valid.sum().div(static_cast<double>(logits.numel())).detach(), 0.0, false});
    call.record({name + "router_accuracy", (logits > 0).eq(top_k).to(torch::kFloat32).mean().detach(), 0.0, false});
    return Stream{sum, normed};
  }

  bool can_decode(int64_t batch) const override { return batch == 1 && inner_->can_decode(batch); }
  BlockState new_state(int64_t batch, torch::ScalarType dtype, torch::Device device) const override {
    return inner_->new_state(batch, dtype, device);
  }

  // One sequence: its passing tokens continue the block's state; the others never enter it.
  Stream step(const Stream& in, const std::string& next_norm, BlockState& state) const override {
    auto logits = router(in.x);
    auto branch = routed_update(in, logits, route_of(logits > 0), [&](const Stream& selected) {
      return inner_->step(selected, "", state).h;
    });
    auto [sum, normed] = context_.add_norm(in.h, branch, next_norm);
    return Stream{sum, normed};
  }

 private:
  // r = w . x + b per token, (B, T), in float32 whatever the autocast dtype (ties in bfloat16
  // would make the top-k choice arbitrary).
  torch::Tensor router(const torch::Tensor& x) const {
    const auto& w = context_.param(prefix_ + ".router.weight");
    return (x.to(torch::kFloat32) * w.squeeze(0)).sum(-1) + context_.param(prefix_ + ".router.bias");
  }

  // sigmoid(r_t) * (block(h_sel)_t - h_t) at the routed positions, 0 elsewhere: (B, T, d).
  template <class RunBlock>
  torch::Tensor routed_update(const Stream& in, const torch::Tensor& logits, const Route& route, RunBlock run) const {
    auto branch = torch::zeros_like(in.h);
    const int64_t K = route.index.size(1);
    if (K == 0) return branch;  // no token of any sequence passes
    auto index = route.index.unsqueeze(-1).expand({in.h.size(0), K, in.h.size(2)});
    Stream selected{in.h.gather(1, index), in.x.gather(1, index)};
    auto updated = run(selected);
    auto scale = (torch::sigmoid(logits).gather(1, route.index) * route.valid).unsqueeze(-1);
    return branch.scatter_add(1, index, ((updated - selected.h) * scale).to(in.h.scalar_type()));
  }

  std::string prefix_;  // "layers.3"
  DepthGating gating_;
  std::unique_ptr<Block> inner_;
  const BlockContext& context_;
};

}  // namespace

std::unique_ptr<Block> make_depth_gated_block(size_t index, const DepthGating& gating, std::unique_ptr<Block> inner,
                                              const BlockContext& context) {
  return std::make_unique<DepthGatedBlock>(index, gating, std::move(inner), context);
}

}  // namespace mixlab
