// Which Hugging Face transformers class expresses a mixlab model exactly, and how
// its config and tensors map (docs/interop.md has the table). Only exact
// equivalents are mapped: anything else is a list of differences, never an
// approximation. Export and import both use one plan, so a round trip is exact.
#pragma once

#include "experiment/config.hpp"
#include "model/model.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mixlab {

// One HF tensor: a mixlab parameter, or one expert's slice [expert] of a stacked one.
struct HfTensor {
  std::string hf;
  std::string mixlab;
  int64_t expert = -1;
};

struct HfPlan {
  std::string model_type;              // "llama", "mistral", "ministral", "qwen2", "mixtral", "mamba2", "bamba"
  nlohmann::json config;               // config.json
  std::vector<HfTensor> tensors;       // in model order
  std::vector<std::string> differences;  // non-empty: no exact HF equivalent (why)
  std::string left_out;                // what of the model is not exported and why ("": nothing)
};

// The plan for a built model (its instances give the resolved shapes).
HfPlan plan_hf(const ExperimentConfig& config, const Model& model);

// The architectures exported and imported (model_type values).
const std::vector<std::string>& hf_model_types();

}  // namespace mixlab
