// `host compile x.toml --output-dir DIR`: the model an experiment describes,
// initialised and written without training: DIR/model.safetensors (the weights
// under their checkpoint names), DIR/config.json (the resolved config),
// DIR/experiment.toml (+ overrides.json), DIR/explain.json and DIR/explain.txt.
// DIR is written as DIR.tmp and renamed, so it is complete or absent.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace mixlab {

// Returns the number of parameters written; throws ExperimentError / std::runtime_error.
int64_t compile_experiment(const std::filesystem::path& experiment, const std::vector<std::string>& overrides,
                           const std::filesystem::path& output_dir);

}  // namespace mixlab
