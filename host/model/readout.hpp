// The readout (model.readout): what the LM head reads, made from the features after
// the final norm. One kind per model, chosen once by make_readout:
//   lm           the features themselves: the logits at position t predict token t + 1
//                from tokens 0..t (a causal language model).
//   autoencoder  MAD's AutoEncoder backbone (Poli et al. 2024; mad-lab mad/model/auto_encoder.py,
//                global_pool "last"): the whole sequence reconstructed from the features at the
//                last position e = x_{T-1} alone, by a non-expanding MLP decoder and a final norm:
//                  z_t = e + P_t                                  t = 0 .. T-1
//                  u_t = GELU(W2 norm2(GELU(W1 norm1(z_t) + b1)) + b2)
//                  out_t = norm(u_t)                              the LM head's input
//                P is the fixed sin-cos position embedding, P_t[i] = sin(t w_i) and
//                P_t[d/2 + i] = cos(t w_i) with w_i = 10000^(-i / (d/2 - 1)), i < d/2 (d even, >= 4).
//                W1, W2 are (d, d), normal(init_std); b1, b2 zero; the norms are model.norm (MAD's
//                RMSNorm in the probe model). MAD's unembedding (a norm and a linear layer) is
//                `norm` and the model's LM head, tied or untied (it has no bias).
//                The logits at t reconstruct token t from the whole sequence: no next-token
//                prediction, so such a model neither decodes, generates nor exports to a causal
//                LM class (non_causal()). Its task is builtin:compression (docs/probe.md).
// Parameters: readout.{norm1,fc1,norm2,fc2,norm}.* ("readout.fc1.weight"), host parameters
// seeded from the job's seed. Tests: tests/unit/test_readout.cpp (a float64 rebuild).
#pragma once

#include "model/block.hpp"

#include <memory>
#include <string>
#include <vector>

namespace mixlab {

class Readout {
 public:
  virtual ~Readout() = default;
  // Its parameters, initialised from `seed` (none for lm).
  virtual std::vector<BlockParam> params(uint64_t seed, double init_std) const = 0;
  // features (B, T, d_model) after the final norm -> the LM head's input (B, T, d_model).
  virtual torch::Tensor forward(const torch::Tensor& features) const = 0;
  // Why the logits at position t are no prediction of token t + 1 from tokens 0..t; empty when
  // they are. Decoding, generation and export need them to be.
  virtual std::string non_causal() const = 0;
};

// The readout of model.readout; `context` outlives it.
std::unique_ptr<Readout> make_readout(const BlockContext& context);

// Its parameters and forward FLOPs per position, for explain and the manifest.
int64_t readout_params(const ExperimentConfig::Model& model);
double readout_forward_flops(const ExperimentConfig::Model& model);

}  // namespace mixlab
