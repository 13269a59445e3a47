// Reading an experiment file: TOML -> ExperimentConfig, with `--set
// key=value` overrides, collecting every problem with its file:line:column,
// the field, what is allowed and a did-you-mean for unknown keys.
#pragma once

#include "experiment/config.hpp"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mixlab {

class Registry;

struct Diagnostic {
  SourcePos pos;
  std::string field;
  std::string message;
  std::string str() const;  // "file:line:col: field: message"
};

// An experiment with one or more problems; what() lists them all.
class ExperimentError : public std::runtime_error {
 public:
  explicit ExperimentError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Parses and checks `file` with overrides ("training.steps=10"); throws ExperimentError.
ExperimentConfig load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});

// The same for experiment text read from `file` (positions and relative plugin
// folders refer to it). Needs no LibTorch: the fuzzer (tests/fuzz/) calls it.
ExperimentConfig parse_experiment(std::string_view text, const std::filesystem::path& file,
                                  const std::vector<std::string>& overrides = {});

// (experiment/plugin_check.cpp) Asks the plugins whether they accept their configs (without building the model):
// unknown plugins, wrong families and rejected configs, positioned at their keys.
std::vector<Diagnostic> check_plugins(const ExperimentConfig& config, const Registry& registry);

// The registry for an experiment: default search path plus job.plugin_path.
Registry experiment_registry(const ExperimentConfig& config);

}  // namespace mixlab
