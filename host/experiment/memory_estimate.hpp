// How much memory training an experiment needs, estimated before anything is
// allocated, so that `host validate` and `host run` can refuse an experiment
// that cannot fit instead of being killed by the kernel half-way into a run.
//
// A conservative count in float32 bytes (parameters, gradients, AdamW state and
// the autograd graph stay float32 even under bfloat16 autocast):
//   weights 4 P, gradients 4 P, AdamW exp_avg and exp_avg_sq 8 P;
//   activations per layer 34 * B * T * d values (what a transformer block with a
//   4d MLP saves for its backward, Korthikanti et al. 2022, "Reducing activation
//   recomputation in large transformer models"), plus 2 * B * H * T^2 for a mixer
//   whose decode state grows with the context (global attention: the scores and
//   softmax of its naive form; H from its n_heads, else 1), plus the embeddings;
//   logits B * T * V and their softmax gradient as much again.
// B is training.batch_size (grad_accum_steps does not multiply it), T data.seq_len.
#pragma once

#include "experiment/config.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace mixlab {

struct MemoryEstimate {
  double weights = 0, gradients = 0, optimizer = 0, activations = 0, logits = 0;  // bytes
  double total() const { return weights + gradients + optimizer + activations + logits; }
  nlohmann::json to_json() const;
};

// From the experiment and its explain report (parameters, vocabulary, per-layer rows).
MemoryEstimate estimate_training_memory(const ExperimentConfig& config, const nlohmann::json& explain_report);

// Throws ExperimentError naming `experiment_file` when the estimate exceeds the memory
// this machine has available: the estimate broken down, and what to reduce.
void require_memory_fits(const std::string& experiment_file, const ExperimentConfig& config,
                         const nlohmann::json& explain_report);

}  // namespace mixlab
