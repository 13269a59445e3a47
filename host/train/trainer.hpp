// `host run`: trains an experiment, evaluates it, and leaves in its run folder
// everything needed to trust and compare it: manifest.json, metrics.jsonl,
// train.log, loss.png, checkpoints/ and the experiment as run.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct RunOptions {
  std::filesystem::path experiment;
  std::vector<std::string> overrides;            // --set key=value
  std::optional<std::filesystem::path> resume;   // --resume RUN_DIR
  std::optional<std::filesystem::path> run_dir;  // --output-dir
};

// Returns the process exit code (0 success, 1 error, 3 non-finite loss, 130 interrupted).
int run_experiment(const RunOptions& options);

// Where tokenizers and token shards are cached: data.cache_dir, else
// $MIXLAB_CACHE, else ~/.cache/mixlab.
struct ExperimentConfig;
std::filesystem::path data_cache_dir(const ExperimentConfig& config);

// The run folder of the last run_experiment call (for tools that chain runs).
const std::filesystem::path& last_run_dir();

}  // namespace mixlab
