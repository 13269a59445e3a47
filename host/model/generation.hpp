// Sampling text from a model: plainly, or through the experiment's execution modes
// ([execution_modes.NAME], docs/experiments.md). A mode sets the sampler (temperature,
// top_k), a budget of tokens and a transition: sampling the transition's special token,
// or spending the budget when budget_exhausted (the token is then inserted, so the model
// sees the same delimiter either way), switches to the next mode. `host generate --mode
// reason` with reason -> answer is DeepSeek-R1's thinking budget: the reasoning part ends
// at `</think>` or at the budget, and the answer follows. Each mode's tokens come back as
// a part of their own.
#pragma once

#include "data/tokenizer.hpp"
#include "experiment/config.hpp"
#include "model/model.hpp"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mixlab {

struct SampleOptions {
  int64_t tokens = 200;  // a mode without a budget (and a plain generation) samples this many
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
  // Set on the command line: then they win over every mode's temperature / top_k.
  bool temperature_given = false;
  bool top_k_given = false;
};

// One id from logits (vocab): greedy at temperature 0, else the softmax of the top k at the temperature.
int64_t sample_token(const torch::Tensor& logits, double temperature, int64_t top_k, at::Generator& gen);

// The tokens sampled in one mode.
struct GeneratedPart {
  std::string mode;  // "" in a plain generation
  std::vector<int32_t> ids;
  // "special_token": the transition token was sampled; "budget_exhausted": the budget was spent and the
  // token inserted; "budget": the budget (or --tokens) was spent and generation ended.
  std::string ended_by;
  std::string transition_token;  // the token that led to the next mode ("" when generation ended)
};

// Continues `prompt` from `mode` ("" : plainly, with `o`) until a mode ends without a transition.
// Uses each mixer's decode step when every mixer declares one and the whole chain fits in max_seq_len,
// else recomputes the window. Throws std::runtime_error for a mode the experiment does not declare.
std::vector<GeneratedPart> generate(Model& model, const data::Tokenizer& tokenizer, const ExperimentConfig& config,
                                    std::vector<int32_t> prompt, const std::string& mode, const SampleOptions& o);

// Every transition token is one piece of `tokenizer`'s vocabulary; else ExperimentError at the token's line.
void require_transition_tokens(const ExperimentConfig& config, const data::Tokenizer& tokenizer);

}  // namespace mixlab
