// A run folder's inputs and its creation. A new run folder is made all at
// once (written as DIR.tmp and renamed: util/staged_dir.hpp), holding the
// experiment file as given (experiment.toml) and the --set overrides
// (overrides.json); `--resume RUN_DIR` runs those two again.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mixlab {

struct ExperimentConfig;

struct RunInputs {
  std::filesystem::path experiment;
  std::vector<std::string> overrides;
};

// What `--resume RUN_DIR` runs; throws when RUN_DIR is not a run folder.
RunInputs resume_inputs(const std::filesystem::path& run_dir);

// RUN_DIR/manifest.json, or null when it is missing or not JSON.
nlohmann::json read_manifest(const std::filesystem::path& run_dir);

// job.output_dir, or runs/<job.name>-<utc>-<random id>.
std::filesystem::path default_run_dir(const ExperimentConfig& config);

// Creates `dir` with the run's inputs; refuses a folder that exists. `before_commit`
// runs on the staged folder just before it is renamed into place (the supervisor
// locks it there, so the folder is never seen unlocked).
void create_run_folder(const std::filesystem::path& dir, const RunInputs& inputs,
                       const std::function<void(const std::filesystem::path& staged)>& before_commit = {});

// A run or compile folder holds a copy of experiment.toml, so an experiment's
// tokenizer.model_file travels with it: copied into `folder` as tokenizer.model, and
// folder/overrides.json rewritten as `overrides` plus the override that names the copy.
// Nothing happens without a model file.
void carry_tokenizer_file(const ExperimentConfig& config, const std::filesystem::path& folder,
                          std::vector<std::string> overrides);

}  // namespace mixlab
