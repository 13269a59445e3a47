#include "model/block.hpp"

#include "model/branch.hpp"
#include "model/depth_gating.hpp"
#include "model/parallel_streams.hpp"

#include <algorithm>

namespace mixlab {

std::vector<BlockParam> norm_params(const std::string& prefix, const ExperimentConfig::Model& model) {
  std::vector<BlockParam> out{{prefix + ".weight", torch::ones({model.d_model}), false}};
  if (model.norm == "layernorm") out.push_back({prefix + ".bias", torch::zeros({model.d_model}), false});
  return out;
}

int64_t norm_param_count(const ExperimentConfig::Model& model) {
  return model.norm == "layernorm" ? 2 * model.d_model : model.d_model;
}

std::vector<BlockParam> plugin_init_params(const std::string& slot_prefix, const PluginInstance& inst, uint64_t seed,
                                           double init_std) {
  auto values = inst.init_params(torch::kFloat32, torch::kCPU, seed, init_std);
  std::vector<BlockParam> out;
  for (size_t p = 0; p < values.size(); ++p)
    out.push_back({slot_prefix + "." + inst.params()[p].name, values[p].detach(), inst.params()[p].weight_decay()});
  return out;
}

std::vector<torch::Tensor> BlockContext::plugin_params(const std::string& slot_prefix, const PluginInstance& inst) const {
  std::vector<torch::Tensor> out;
  for (const auto& p : inst.params()) out.push_back(param(slot_prefix + "." + p.name));
  return out;
}

torch::Tensor BlockContext::norm(const torch::Tensor& x, const std::string& prefix) const {
  if (model_.norm == "layernorm")
    return torch::layer_norm(x, {model_.d_model}, param(prefix + ".weight"), param(prefix + ".bias"), model_.norm_eps);
  return torch::rms_norm(x, {model_.d_model}, param(prefix + ".weight"), model_.norm_eps);
}

AddNorm BlockContext::add_norm(const torch::Tensor& h, const torch::Tensor& branch, const std::string& norm) const {
  if (norm.empty()) return AddNorm{h + branch, torch::Tensor()};
  auto bias = model_.norm == "layernorm" ? param(norm + ".bias") : torch::Tensor();
  auto add_then_norm = fused_ ? add_norm_fused : add_norm_reference;
  return add_then_norm(h, branch, param(norm + ".weight"), bias, model_.norm_eps);
}

void BlockCall::record(SideOutput side) const {
  if (side.is_aux_loss && side.coefficient != 0.0) *aux_loss = *aux_loss + side.coefficient * side.value;
  sides->push_back(std::move(side));
}

namespace {

// A block of slots (a mixer, an ffn, or both), each a Branch: running one slot forward and in decode.
class PluginBlock : public Block {
 public:
  struct Slot {
    std::string name;  // "mixer" | "ffn"
    std::unique_ptr<Branch> branch;
  };

  PluginBlock(size_t index, std::vector<Slot> slots, const BlockContext& context)
      : prefix_("layers." + std::to_string(index)), context_(context), slots_(std::move(slots)) {}

  std::vector<BlockParam> extra_params(uint64_t seed, double init_std) const override {
    std::vector<BlockParam> out;
    for (const auto& s : slots_)
      for (auto& p : s.branch->extra_params(seed, init_std)) out.push_back(std::move(p));
    return out;
  }

  bool can_decode(int64_t) const override {
    return std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.branch->can_decode(); });
  }

  BlockState new_state(int64_t batch, torch::ScalarType dtype, torch::Device device) const override {
    BlockState state;
    for (const auto& s : slots_) s.branch->add_states(state, batch, dtype, device);
    return state;
  }

 protected:
  torch::Tensor run(size_t k, const torch::Tensor& x, const BlockCall& call) const {
    return slots_[k].branch->forward(x, call);
  }

  // Slot k continuing the sequences; the block's states are in slot order.
  torch::Tensor step_slot(size_t k, const torch::Tensor& x, BlockState& state) const {
    size_t first = 0;
    for (size_t j = 0; j < k; ++j) first += slots_[j].branch->n_states();
    return slots_[k].branch->step(x, state, first);
  }

  torch::Tensor dropout(const torch::Tensor& y, bool training) const {
    return torch::dropout(y, context_.model().dropout, training);
  }

  std::string prefix_;  // "layers.3"
  const BlockContext& context_;
  std::vector<Slot> slots_;
};

// norm -> mixer -> residual -> norm -> ffn -> residual, each slot with its own norm
// (norm1 before the mixer, norm2 before the ffn; after them in post-norm).
class SequentialBlock final : public PluginBlock {
 public:
  using PluginBlock::PluginBlock;

  std::string input_norm() const override { return norm_of(0); }
  std::vector<std::string> norms() const override {
    std::vector<std::string> out;
    for (size_t k = 0; k < slots_.size(); ++k) out.push_back(norm_of(k));
    return out;
  }

  Stream forward(const Stream& in, const std::string& next_norm, const BlockCall& call) const override {
    Stream s = in;
    for (size_t k = 0; k < slots_.size(); ++k) s = add(s, dropout(run(k, s.x, call), call.training), k, next_norm);
    return s;
  }

  Stream step(const Stream& in, const std::string& next_norm, BlockState& state) const override {
    Stream s = in;
    for (size_t k = 0; k < slots_.size(); ++k) s = add(s, step_slot(k, s.x, state), k, next_norm);
    return s;
  }

 private:
  std::string norm_of(size_t k) const { return prefix_ + (slots_[k].name == "mixer" ? ".norm1" : ".norm2"); }

  // h + branch of slot k and the norm after it: the next slot's (or next_norm) in pre-norm, k's own in post-norm.
  Stream add(const Stream& s, const torch::Tensor& branch, size_t k, const std::string& next_norm) const {
    const bool pre = context_.pre_norm();
    const std::string after = !pre ? norm_of(k) : k + 1 < slots_.size() ? norm_of(k + 1) : next_norm;
    auto [sum, normed] = context_.add_norm(s.h, branch, after);
    return Stream{pre ? sum : normed, normed};
  }
};

// h + mixer(x) + ffn(x) with x = norm1(h) (pre-norm), or norm1(h + mixer(h) + ffn(h)) (post-norm).
class ParallelBlock final : public PluginBlock {
 public:
  using PluginBlock::PluginBlock;

  std::string input_norm() const override { return prefix_ + ".norm1"; }
  std::vector<std::string> norms() const override { return {input_norm()}; }

  Stream forward(const Stream& in, const std::string& next_norm, const BlockCall& call) const override {
    torch::Tensor branch = run(0, in.x, call);
    for (size_t k = 1; k < slots_.size(); ++k) branch = branch + run(k, in.x, call);
    return add(in, dropout(branch, call.training), next_norm);
  }

  Stream step(const Stream& in, const std::string& next_norm, BlockState& state) const override {
    torch::Tensor branch = step_slot(0, in.x, state);
    for (size_t k = 1; k < slots_.size(); ++k) branch = branch + step_slot(k, in.x, state);
    return add(in, branch, next_norm);
  }

 private:
  Stream add(const Stream& s, const torch::Tensor& branch, const std::string& next_norm) const {
    const bool pre = context_.pre_norm();
    auto [sum, normed] = context_.add_norm(s.h, branch, pre ? next_norm : input_norm());
    return Stream{pre ? sum : normed, normed};
  }
};

}  // namespace

std::vector<LayerSlot<std::shared_ptr<PluginInstance>>> LayerSlots::plugins() const {
  std::vector<LayerSlot<std::shared_ptr<PluginInstance>>> out;
  if (mixer) out.push_back({"mixer", mixer, std::nullopt});
  for (size_t k = 0; k < streams.size(); ++k) out.push_back({"streams." + std::to_string(k) + ".mixer", streams[k], k});
  if (ffn) out.push_back({"ffn", ffn, std::nullopt});
  return out;
}

std::unique_ptr<Block> make_block(size_t index, const LayerSlots& slots, const LayerTemplate& layer,
                                  const BlockContext& context) {
  const std::string prefix = "layers." + std::to_string(index);
  std::vector<PluginBlock::Slot> branches;
  if (layer.streams) branches.push_back({"mixer", make_parallel_streams(index, *layer.streams, slots.streams, context)});
  else if (slots.mixer) branches.push_back({"mixer", make_plugin_branch(prefix + ".mixer", slots.mixer, index * 2, context)});
  if (slots.ffn) branches.push_back({"ffn", make_plugin_branch(prefix + ".ffn", slots.ffn, index * 2 + 1, context)});
  std::unique_ptr<Block> block;
  if (context.model().residual == "parallel") block = std::make_unique<ParallelBlock>(index, std::move(branches), context);
  else block = std::make_unique<SequentialBlock>(index, std::move(branches), context);
  if (layer.depth_gating) block = make_depth_gated_block(index, *layer.depth_gating, std::move(block), context);
  return block;
}

int64_t layer_host_params(const LayerSlots& slots, const LayerTemplate& layer, const ExperimentConfig::Model& model) {
  const int64_t per_norm = norm_param_count(model);
  const bool has_mixer = slots.mixer || layer.streams;
  const int64_t n_norms = model.residual == "parallel" ? 1 : (has_mixer ? 1 : 0) + (slots.ffn ? 1 : 0);
  return n_norms * per_norm + (layer.depth_gating ? depth_router_params(model.d_model) : 0) +
         (layer.streams ? parallel_streams_host_params(*layer.streams, model.d_model) : 0);
}

double layer_forward_flops(const LayerSlots& slots, const LayerTemplate& layer, int64_t d_model, int64_t seq_len) {
  const double share = layer.depth_gating ? layer.depth_gating->capacity : 1.0;
  const int64_t routed = layer.depth_gating ? routed_tokens(layer.depth_gating->capacity, seq_len) : seq_len;
  double flops = 0;
  for (const auto& slot : slots.plugins()) flops += share * slot.plugin->cost(routed, 4).forward_flops;
  if (layer.streams) flops += share * parallel_streams_host_flops(*layer.streams, d_model, routed);
  return flops + (layer.depth_gating ? 2.0 * static_cast<double>(d_model) : 0.0);
}

}  // namespace mixlab
