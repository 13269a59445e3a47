// `host import HF_DIR --output-dir D`: a local Hugging Face folder (config.json +
// model.safetensors, or shards with model.safetensors.index.json) of an
// architecture hf_mapping expresses, turned into a mixlab model folder:
// D/experiment.toml (+ overrides.json, config.json, import.json) and
// D/model.safetensors under mixlab names, which `host forward`, `generate`,
// `export` and `run --init-from` take. D is written as D.tmp and renamed.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

// Returns the model_type imported; throws naming the file for anything it cannot map.
std::string import_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& output_dir);

}  // namespace mixlab
