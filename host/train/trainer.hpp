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
  std::optional<std::filesystem::path> init_from;  // --init-from DIR: start from its weights (ignored on resume)
};

// Returns the process exit code (0 success, 1 error, 3 non-finite loss, 130 interrupted).
int run_experiment(const RunOptions& options);

// Sets ATen's intra-op threads from training.threads (0: every core); returns the count in force.
struct ExperimentConfig;
int set_threads(const ExperimentConfig& config);

// The run folder of the last run_experiment call (for tools that chain runs).
const std::filesystem::path& last_run_dir();

}  // namespace mixlab
