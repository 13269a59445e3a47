// `host explain`: what an experiment builds, computed from the plugins' specs
// and cost models without allocating the model: the layer table, total and
// active parameters, training FLOPs per token, decode-state bytes, training memory.
#pragma once

#include "experiment/config.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace mixlab {

class Registry;

// "1.2M", "3.40B": parameter and byte counts for people.
std::string human_count(double n);
// "1.6 GB", "262.1 KB": byte counts.
std::string human_bytes(double n);

// The vocabulary size the experiment will have, without training a tokenizer.
int64_t planned_vocab_size(const ExperimentConfig& config);

nlohmann::json explain_report(const ExperimentConfig& config, const Registry& registry);
void print_explain(const ExperimentConfig& config, const nlohmann::json& report);

}  // namespace mixlab
