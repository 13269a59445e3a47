// Multi-token prediction (DeepSeek-V3, arXiv 2412.19437, section 2.2): D sequential
// modules after the main model; module k (k = 1..D) predicts the token k + 1
// positions ahead of each position i, keeping the causal chain:
//   h'_i^k = M_k [norm(h_i^{k-1}); norm(Emb(t_{i+k}))]     M_k: (d, 2d), no bias
//   h^k_{0:T-k} = TRM_k(h'^k_{0:T-k})                       one layer (mixer + ffn)
//   P^k_{i+k+1} = softmax(Head(final_norm_k(h_i^k)))
// h^0 is the main model's last residual stream (before its final norm); Emb and Head
// are the main model's (shared, DeepSeek-V3's choice); each module has its own two
// input norms, projection, layer and final norm (the norm of DeepSeek-V3's released
// "shared_head"). TRM_k is the last layer's template (its mixer and ffn plugins, with
// their configs), so a module costs one more layer of the model's own kind. Norms
// follow model.norm; post-norm models have no final norm (as the main model).
// Position: the block's mixer sees positions 0..T-k-1 (its RoPE, if any); learned
// absolute position embeddings are not added to Emb(t_{i+k}) since h^{k-1} carries them.
//
// Training only: generation never runs the modules (`host generate` uses the main
// model), explain lists their parameters apart. The objective (train/mtp_loss.hpp):
//   L = L_main + lambda / D * sum_k L_k.
// Parameters: mtp.<k>.{hnorm,enorm}.weight, mtp.<k>.proj.weight, mtp.<k>.norm1/norm2.weight,
// mtp.<k>.mixer.*, mtp.<k>.ffn.*, mtp.<k>.final_norm.weight (k from 1). Tests:
// tests/unit/test_mtp.cpp (against a float64 reference, forward and gradients).
#pragma once

#include "model/model.hpp"

#include <functional>

namespace mixlab {

class MtpHead {
 public:
  // Registers parameters with the model, in order.
  using AddParams = std::function<void(const std::vector<BlockParam>&)>;

  // Module k's layer: instances of the last layer's template.
  static LayerSlots create_block(const ExperimentConfig& config, const Registry& registry);
  // The host's parameters of one module (norms and projection), without its plugins'.
  static int64_t host_params_per_module(const ExperimentConfig& config, const LayerSlots& block);

  MtpHead(const ExperimentConfig& config, const Registry& registry, const AddParams& add);

  struct Output {
    std::vector<torch::Tensor> features;  // [k - 1]: (B, T - k, d), the shared head's input for depth k
    std::vector<SideOutput> sides;        // the blocks' plugin side outputs, "mtp.<k>.<slot>/<name>"
    torch::Tensor aux_loss;               // sum of coefficient * aux over the blocks
  };
  // stream: h^0 (B, T, d); tokens: the inputs (B, T), T > depth.
  Output forward(const Model& model, const torch::Tensor& stream, const torch::Tensor& tokens, bool training,
                 uint64_t seed) const;
  int64_t depth() const { return static_cast<int64_t>(blocks_.size()); }

 private:
  std::vector<LayerSlots> blocks_;
};

}  // namespace mixlab
