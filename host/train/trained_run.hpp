// A finished (or checkpointed) run loaded back: its experiment as run, the
// plugins, the tokenizer (from the data cache) and the model with the weights
// of the newest intact checkpoint (checksums verified; damaged newer ones are
// skipped with a warning). Used by generate, forward and analyze.
#pragma once

#include "data/dataset.hpp"
#include "experiment/config.hpp"
#include "model/model.hpp"
#include "runtime/registry.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace mixlab {

struct TrainedRun {
  std::filesystem::path dir;
  std::filesystem::path checkpoint;
  ExperimentConfig config;
  Registry registry;
  std::unique_ptr<data::Dataset> dataset;
  std::unique_ptr<Model> model;
};

// The --set overrides a run was started with (RUN_DIR/overrides.json; none when absent).
// Throws std::runtime_error naming the file when it is not a JSON list of strings.
std::vector<std::string> read_run_overrides(const std::filesystem::path& run_dir);

// Throws std::runtime_error naming the folder when it is not a run or has no checkpoint.
TrainedRun load_trained_run(const std::filesystem::path& run_dir);

}  // namespace mixlab
