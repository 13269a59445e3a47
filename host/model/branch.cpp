#include "model/branch.hpp"

namespace mixlab {
namespace {

// A mixer steps its decode state; an FFN is position-wise, so its forward on the new tokens is its step.
class PluginBranch final : public Branch {
 public:
  PluginBranch(std::string prefix, std::shared_ptr<PluginInstance> instance, uint64_t seed_offset,
               const BlockContext& context)
      : prefix_(std::move(prefix)), instance_(std::move(instance)), seed_offset_(seed_offset), context_(context) {}

  torch::Tensor forward(const torch::Tensor& x, const BlockCall& call) const override {
    CallOptions options{call.training, call.seed * 1315423911ull + seed_offset_};
    auto r = instance_->forward(x, context_.plugin_params(prefix_, *instance_), options);
    size_t aux = 0, stat = 0;
    for (const auto& side : instance_->sides()) {
      bool is_aux = side.kind == MIXLAB_SIDE_AUX_LOSS;
      auto value = is_aux ? r.aux_losses[aux++] : r.statistics[stat++];
      call.record(SideOutput{prefix_ + "/" + side.name, value, is_aux ? side.coefficient : 0.0, is_aux,
                             side.kind == MIXLAB_SIDE_TOKEN_STATISTIC});
    }
    return r.y;
  }

  bool can_decode() const override { return !is_mixer() || instance_->can_decode(); }

  void add_states(BlockState& state, int64_t batch, torch::ScalarType dtype, torch::Device device) const override {
    if (is_mixer()) state.mixers.push_back(instance_->new_state(batch, dtype, device));
  }

  size_t n_states() const override { return is_mixer() ? 1 : 0; }

  torch::Tensor step(const torch::Tensor& x, BlockState& state, size_t first) const override {
    auto params = context_.plugin_params(prefix_, *instance_);
    if (!is_mixer()) return instance_->forward(x, params).y;
    for (auto& p : params) p = p.detach();
    return state.mixers.at(first)->step(x, params);
  }

 private:
  bool is_mixer() const { return instance_->impl().family == MIXLAB_FAMILY_MIXER; }

  std::string prefix_;
  std::shared_ptr<PluginInstance> instance_;
  uint64_t seed_offset_;
  const BlockContext& context_;
};

}  // namespace

std::unique_ptr<Branch> make_plugin_branch(const std::string& prefix, std::shared_ptr<PluginInstance> instance,
                                           uint64_t seed_offset, const BlockContext& context) {
  return std::make_unique<PluginBranch>(prefix, std::move(instance), seed_offset, context);
}

}  // namespace mixlab
