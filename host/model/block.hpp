// A layer of the model is a Block: the unit of composition. The model runs its
// blocks in order over the residual stream; how a layer's plugins meet the
// stream is the kind of block, chosen once by make_block, never by branches in
// the model's forward loop:
//   SequentialBlock  norm -> mixer -> residual -> norm -> ffn -> residual (model.residual = "sequential")
//   ParallelBlock    h + mixer(norm(h)) + ffn(norm(h)), one norm (model.residual = "parallel"; GPT-J, PaLM)
//   DepthGatedBlock  either of them for the tokens a router picks, the residual for the rest
//                    (a template's depth_gating; model/depth_gating.hpp)
// What a slot adds to the stream is a Branch (model/branch.hpp), also chosen by make_block: a
// plugin, or parallel streams of mixers fed the same normed input and merged into the mixer's
// branch (a template's streams and merge; model/parallel_streams.hpp), in either kind of block.
// Between two sublayers the residual add and the next norm are one step
// (model/residual_norm.hpp), so a block ends with the norm that follows it: the
// next block's input norm, or final_norm, in pre-norm; its own in post-norm.
#pragma once

#include "experiment/config.hpp"
#include "model/residual_norm.hpp"
#include "runtime/instance.hpp"

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mixlab {

// A slot the experiment marks "none" holds no instance (nullptr).
struct LayerSlots {
  std::shared_ptr<PluginInstance> mixer;
  std::shared_ptr<PluginInstance> ffn;
  std::vector<std::shared_ptr<PluginInstance>> streams;  // parallel streams, in place of the mixer
  // Every plugin with its slot (experiment/config.hpp), in parameter order.
  std::vector<LayerSlot<std::shared_ptr<PluginInstance>>> plugins() const;
};

// Plugin and block side outputs of one forward, per layer and slot.
struct SideOutput {
  std::string name;     // "layers.3.ffn/balance_loss", "layers.3.depth_gating/routed_share"
  torch::Tensor value;  // aux losses carry gradients; statistics are detached
  double coefficient;   // aux losses: weight in the objective; statistics: 0
  bool is_aux_loss;
  bool per_token = false;  // a token statistic: (B, T, ...), for analyses rather than logs
};

// The residual stream between two blocks.
struct Stream {
  torch::Tensor h;  // (B, T, d_model): the residual stream
  torch::Tensor x;  // the next sublayer's input: h normed by the next block's input norm (pre-norm), h (post-norm)
};

// A host parameter a block owns besides its norms (a router's weight).
struct BlockParam {
  std::string name;
  torch::Tensor value;  // float32, on the CPU
  bool weight_decay;
};

// A norm's parameters: "<prefix>.weight" (ones) and, for LayerNorm, "<prefix>.bias" (zeros).
std::vector<BlockParam> norm_params(const std::string& prefix, const ExperimentConfig::Model& model);
// How many values norm_params creates: 2 d_model for LayerNorm, d_model for RMSNorm.
int64_t norm_param_count(const ExperimentConfig::Model& model);
// A plugin's freshly initialised parameters, "<slot_prefix>.<name>" in its declared order.
std::vector<BlockParam> plugin_init_params(const std::string& slot_prefix, const PluginInstance& inst, uint64_t seed,
                                           double init_std);

// What every block uses of the model: parameters by name, the norms and the add + norm seam.
class BlockContext {
 public:
  using ParamLookup = std::function<const torch::Tensor&(const std::string&)>;
  BlockContext(const ExperimentConfig::Model& model, bool fused, ParamLookup param)
      : model_(model), fused_(fused), param_(std::move(param)) {}

  const ExperimentConfig::Model& model() const { return model_; }
  bool pre_norm() const { return model_.norm_position == "pre"; }
  const torch::Tensor& param(const std::string& name) const { return param_(name); }
  // A plugin's parameters, in its declared order: "<slot_prefix>.<name>" ("layers.3.mixer.wq").
  std::vector<torch::Tensor> plugin_params(const std::string& slot_prefix, const PluginInstance& inst) const;
  torch::Tensor norm(const torch::Tensor& x, const std::string& prefix) const;
  // h + branch and norm(h + branch) with the norm named `norm` (fused when training.fused);
  // an empty name: the sum only (normed undefined).
  AddNorm add_norm(const torch::Tensor& h, const torch::Tensor& branch, const std::string& norm) const;

 private:
  ExperimentConfig::Model model_;
  bool fused_;
  ParamLookup param_;
};

// One forward's settings and where its side outputs go.
struct BlockCall {
  bool training = false;
  uint64_t seed = 0;  // the forward's seed; each plugin call derives its own from it
  std::vector<SideOutput>* sides = nullptr;
  torch::Tensor* aux_loss = nullptr;  // sum of coefficient * aux loss
  // Records a side output; aux losses with a non-zero coefficient join the objective.
  void record(SideOutput side) const;
};

// Decode state of a block: its mixers' states (one per mixer, in slot and stream order) and
// host caches (a cross-attention merge's keys and values).
struct BlockState {
  std::vector<std::unique_ptr<DecodeState>> mixers;
  std::vector<torch::Tensor> caches;
};

class Block {
 public:
  virtual ~Block() = default;
  // The norm that makes this block's input from h in pre-norm (the previous block applies it).
  virtual std::string input_norm() const = 0;
  // The norms this block owns ("layers.3.norm1"), in parameter order.
  virtual std::vector<std::string> norms() const = 0;
  // Host parameters besides the norms, initialised (after the plugins' in parameter order).
  virtual std::vector<BlockParam> extra_params(uint64_t /*seed*/, double /*init_std*/) const { return {}; }
  // The block on the stream. `next_norm` (pre-norm): the norm after the block, applied to the
  // new h to make the next x; "" leaves x undefined (a caller that norms itself). Post-norm: unused.
  virtual Stream forward(const Stream& in, const std::string& next_norm, const BlockCall& call) const = 0;
  // Decode: the block continues sequences whose earlier tokens `state` holds.
  virtual bool can_decode(int64_t batch) const = 0;
  virtual BlockState new_state(int64_t batch, torch::ScalarType dtype, torch::Device device) const = 0;
  virtual Stream step(const Stream& in, const std::string& next_norm, BlockState& state) const = 0;
};

// The block of layer `index` ("layers.<index>"): its plugins, the template's depth gating and
// model.residual. `context` outlives it.
std::unique_ptr<Block> make_block(size_t index, const LayerSlots& slots, const LayerTemplate& layer,
                                  const BlockContext& context);

// What a layer adds to the model besides its plugins' parameters: norms, router, the streams'
// input projections and merge, for explain and the manifest (the same count the Model allocates).
int64_t layer_host_params(const LayerSlots& slots, const LayerTemplate& layer, const ExperimentConfig::Model& model);
// A layer's forward FLOPs per token at seq_len: its plugins' (for a depth-gated layer, the
// capacity share of tokens, as a sequence of ceil(capacity * seq_len)), plus a router's 2 d_model
// and the streams' projections and merge.
double layer_forward_flops(const LayerSlots& slots, const LayerTemplate& layer, int64_t d_model, int64_t seq_len);

}  // namespace mixlab
