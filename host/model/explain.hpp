// `host explain`: what an experiment builds, computed from the plugins' specs
// and cost models without allocating the model: the layer table, total and
// active parameters, training FLOPs per token, decode-state bytes, training memory.
#pragma once

#include "experiment/config.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace mixlab {

class Registry;
struct PresetFile;

nlohmann::json explain_report(const ExperimentConfig& config, const Registry& registry);
void print_explain(const ExperimentConfig& config, const nlohmann::json& report);

// `host explain`'s report of a preset (its plugins checked first).
nlohmann::json explain_preset(const PresetFile& preset);

}  // namespace mixlab
