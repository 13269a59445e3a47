// The language model: token (and optional position) embeddings, a stack of
// layers `norm -> mixer plugin -> residual -> norm -> ffn plugin -> residual`
// (pre- or post-norm; a layer may lack either branch), a final norm and the LM
// head. Everything that differs between architectures is a plugin; the host owns
// every parameter. Between two sublayers the residual add and the next norm are
// one step (model/residual_norm.hpp: fused, or the reference when
// training.fused = false).
#pragma once

#include "experiment/config.hpp"
#include "model/residual_norm.hpp"
#include "runtime/instance.hpp"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mixlab {

// A named parameter of the whole model ("layers.3.mixer.wq").
struct NamedParam {
  std::string name;
  torch::Tensor tensor;
  bool weight_decay = true;
};

// A slot the experiment marks "none" holds no instance (nullptr).
struct LayerSlots {
  std::shared_ptr<PluginInstance> mixer;
  std::shared_ptr<PluginInstance> ffn;
};

// Plugin side outputs of one forward, per layer and slot.
struct SideOutput {
  std::string name;     // "layers.3.ffn/balance_loss"
  torch::Tensor value;  // aux losses carry gradients; statistics are detached
  double coefficient;   // aux losses: weight in the objective; statistics: 0
  bool is_aux_loss;
  bool per_token = false;  // a token statistic: (B, T, ...), for analyses rather than logs
};

struct ModelOutput {
  torch::Tensor features;  // (B, T, d_model): the LM head's input (after the final norm)
  torch::Tensor logits;    // (B, T, vocab); forward_features leaves it undefined
  std::vector<SideOutput> sides;
  torch::Tensor aux_loss;  // sum of coefficient * aux, a scalar (0 when there is none)
};

class MtpHead;

// Instances for every layer, created without allocating parameters.
std::vector<LayerSlots> create_layers(const ExperimentConfig& config, const Registry& registry);

class Model {
 public:
  Model(const ExperimentConfig& config, const Registry& registry, int64_t vocab_size, torch::Device device);
  ~Model();

  // `layer_outputs`, when given, receives the residual stream after each layer.
  ModelOutput forward(const torch::Tensor& tokens, bool training, uint64_t seed,
                      std::vector<torch::Tensor>* layer_outputs = nullptr);
  // Everything but the logits, for a loss that applies the head itself (train/lm_head_loss.hpp).
  ModelOutput forward_features(const torch::Tensor& tokens, bool training, uint64_t seed,
                               std::vector<torch::Tensor>* layer_outputs = nullptr);
  // The LM head's weight (vocab, d_model): the embedding when tied.
  const torch::Tensor& head_weight() const;

  const std::vector<NamedParam>& parameters() const { return params_; }
  const torch::Tensor& param(const std::string& name) const;
  // The norm whose parameters are named prefix.weight (and prefix.bias for LayerNorm).
  torch::Tensor norm(const torch::Tensor& x, const std::string& prefix) const;
  const ExperimentConfig& config() const { return config_; }
  // The multi-token prediction modules (model.mtp.depth > 0), a training objective; null without.
  const MtpHead* mtp() const { return mtp_.get(); }
  const std::vector<LayerSlots>& layers() const { return layers_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t n_parameters() const;
  torch::Device device() const { return device_; }

  // Decode: one state per layer where every mixer declares decode.
  bool can_decode() const;
  class DecodeSession {
   public:
    // Continues the sequences with tokens (B, T); returns logits (B, T, vocab).
    torch::Tensor step(const torch::Tensor& tokens);
    int64_t position() const { return position_; }

   private:
    friend class Model;
    Model* model_ = nullptr;
    std::vector<std::unique_ptr<DecodeState>> mixer_states_;
    int64_t position_ = 0;
  };
  DecodeSession start_decode(int64_t batch);

 private:
  // One plugin slot of a layer, in order, with the norm before (pre-norm) or after (post-norm) it.
  struct Sublayer {
    size_t layer;
    std::string slot;  // "mixer" | "ffn"
    std::shared_ptr<PluginInstance> instance;
    std::string norm;  // "layers.3.norm1"
  };

  // h + branch and the norm that follows sublayer k: the next sublayer's (the final norm after the
  // last) in pre-norm, k's own in post-norm.
  AddNorm add_norm(const torch::Tensor& h, const torch::Tensor& branch, size_t k) const;
  torch::Tensor embed(const torch::Tensor& tokens, int64_t start, bool training) const;
  std::vector<torch::Tensor> slot_params(size_t layer, const std::string& slot) const;

  ExperimentConfig config_;
  int64_t vocab_;
  torch::Device device_;
  std::vector<LayerSlots> layers_;
  std::vector<Sublayer> sublayers_;
  std::vector<NamedParam> params_;
  std::map<std::string, size_t> index_;
  std::unique_ptr<MtpHead> mtp_;
};

}  // namespace mixlab
