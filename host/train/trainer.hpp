// The training of a `host run` worker (host/launch/ supervises it): trains an
// experiment in its run folder, evaluates it, and leaves there everything needed
// to trust and compare it: manifest.json, metrics.jsonl, train.log, loss.png,
// checkpoints/ and the experiment as run.
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
  int64_t profile_steps = 0;                       // --profile-steps K: profile.txt/.json of K steps (train/step_profiler.hpp)
};

// Returns the process exit code (0 success, 1 error, 3 non-finite loss, 130 interrupted).
int run_experiment(const RunOptions& options);

// Sets ATen's intra-op threads from training.threads (0: OMP_NUM_THREADS, else the cores shared by
// the local ranks); returns the count in force.
struct ExperimentConfig;
int set_threads(const ExperimentConfig& config);

}  // namespace mixlab
