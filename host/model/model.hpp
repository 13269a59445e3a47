// The language model: token (and optional position) embeddings, a stack of
// blocks (model/block.hpp: one per layer; by default `norm -> mixer plugin ->
// residual -> norm -> ffn plugin -> residual`, pre- or post-norm, a layer may
// lack either branch), a final norm, the readout (model/readout.hpp: the features
// themselves, or MAD's autoencoder decoder) and the LM head. Everything that differs
// between architectures is a plugin or a kind of block; the host owns every
// parameter.
#pragma once

#include "experiment/config.hpp"
#include "model/block.hpp"
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

struct ModelOutput {
  torch::Tensor features;  // (B, T, d_model): the LM head's input (after the final norm and the readout)
  torch::Tensor logits;    // (B, T, vocab); forward_features leaves it undefined
  std::vector<SideOutput> sides;
  torch::Tensor aux_loss;  // sum of coefficient * aux, a scalar (0 when there is none)
};

class MtpHead;
class Readout;

// Instances for every layer, created without allocating parameters.
std::vector<LayerSlots> create_layers(const ExperimentConfig& config, const Registry& registry);

class Model {
 public:
  Model(const ExperimentConfig& config, const Registry& registry, int64_t vocab_size, torch::Device device);
  ~Model();
  Model(const Model&) = delete;  // the blocks' context refers to this model's parameters
  Model& operator=(const Model&) = delete;

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
  const Readout& readout() const { return *readout_; }
  const std::vector<LayerSlots>& layers() const { return layers_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t n_parameters() const;
  torch::Device device() const { return device_; }

  // Decode: one state per block, when every block can continue `batch` sequences (every mixer
  // declares decode; a model with depth gating decodes one sequence at a time) and the readout
  // predicts the next token.
  bool can_decode(int64_t batch = 1) const;
  class DecodeSession {
   public:
    // Continues the sequences with tokens (B, T); returns logits (B, T, vocab).
    torch::Tensor step(const torch::Tensor& tokens);
    int64_t position() const { return position_; }

   private:
    friend class Model;
    Model* model_ = nullptr;
    std::vector<BlockState> states_;
    int64_t position_ = 0;
  };
  DecodeSession start_decode(int64_t batch);

 private:
  torch::Tensor embed(const torch::Tensor& tokens, int64_t start, bool training) const;
  // The stream entering the first block: h, and its input norm applied in pre-norm.
  Stream first_stream(const torch::Tensor& h) const;
  // The norm after block b in pre-norm: the next block's input norm, final_norm after the last.
  std::string norm_after(size_t b) const;

  ExperimentConfig config_;
  int64_t vocab_;
  torch::Device device_;
  std::vector<LayerSlots> layers_;
  BlockContext context_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<NamedParam> params_;
  std::map<std::string, size_t> index_;
  std::unique_ptr<Readout> readout_;
  std::unique_ptr<MtpHead> mtp_;
};

}  // namespace mixlab
