#include "train/run_folder.hpp"

#include "experiment/config.hpp"
#include "train/trained_run.hpp"
#include "util/atomic_file.hpp"
#include "util/staged_dir.hpp"
#include "util/system_info.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mixlab {

RunInputs resume_inputs(const std::filesystem::path& run_dir) {
  if (!std::filesystem::exists(run_dir / "experiment.toml"))
    throw std::runtime_error(run_dir.string() + ": not a run folder (no experiment.toml)");
  return {run_dir / "experiment.toml", read_run_overrides(run_dir)};
}

nlohmann::json read_manifest(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / "manifest.json");
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

std::filesystem::path default_run_dir(const ExperimentConfig& config) {
  if (!config.job.output_dir.empty()) return config.job.output_dir;
  return std::filesystem::path("runs") / (config.job.name + "-" + utc_now("%Y%m%dT%H%M%SZ") + "-" + short_id());
}

void create_run_folder(const std::filesystem::path& dir, const RunInputs& inputs,
                       const std::function<void(const std::filesystem::path&)>& before_commit) {
  if (std::filesystem::exists(dir / "manifest.json"))
    throw std::runtime_error(dir.string() + " already holds a run; use --resume or another output folder");
  if (std::filesystem::exists(dir))
    throw std::runtime_error(dir.string() + " exists; a new run needs a new folder (--output-dir)");
  StagedDir staged(dir, "run");
  std::ifstream src(inputs.experiment);
  std::stringstream text;
  text << src.rdbuf();
  write_file_atomic(staged.path() / "experiment.toml", text.str());
  write_file_atomic(staged.path() / "overrides.json", nlohmann::json(inputs.overrides).dump());
  if (before_commit) before_commit(staged.path());
  staged.commit();
}

void carry_tokenizer_file(const ExperimentConfig& config, const std::filesystem::path& folder,
                          std::vector<std::string> overrides) {
  if (config.tokenizer.model_file.empty()) return;
  std::filesystem::copy_file(config.tokenizer.model_file, folder / "tokenizer.model");
  overrides.push_back("tokenizer.model_file=tokenizer.model");
  write_file_atomic(folder / "overrides.json", nlohmann::json(overrides).dump() + "\n");
}

}  // namespace mixlab
