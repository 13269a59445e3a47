#include "train/trained_run.hpp"

#include "experiment/loader.hpp"
#include "train/checkpoint.hpp"
#include "experiment/experiment_data.hpp"

#include <algorithm>
#include <fstream>

namespace mixlab {

std::vector<std::string> read_run_overrides(const std::filesystem::path& run_dir) {
  const auto file = run_dir / "overrides.json";
  std::ifstream in(file);
  if (!in) return {};
  auto j = nlohmann::json::parse(in, nullptr, false);
  const bool strings = j.is_array() && std::all_of(j.begin(), j.end(), [](const auto& e) { return e.is_string(); });
  if (!strings)
    throw std::runtime_error(file.string() + ": expected a JSON list of \"key=value\" strings (the run's --set "
                             "overrides), e.g. [\"training.steps=100\"]");
  return j.get<std::vector<std::string>>();
}

TrainedRun load_trained_run(const std::filesystem::path& run_dir) {
  TrainedRun run;
  run.dir = run_dir;
  if (!std::filesystem::exists(run_dir / "experiment.toml"))
    throw std::runtime_error(run_dir.string() + ": not a run folder (no experiment.toml)");
  run.config = load_experiment(run_dir / "experiment.toml", read_run_overrides(run_dir));
  // Damaged newer checkpoints are skipped with a warning naming the file, as --resume does.
  auto ckpt = newest_intact_checkpoint(run_dir);
  if (!ckpt) throw std::runtime_error(run_dir.string() + ": no complete checkpoint");
  run.checkpoint = *ckpt;
  run.registry = experiment_registry(run.config);
  const auto& c = run.config;
  run.dataset = open_dataset(c);
  run.model = std::make_unique<Model>(c, run.registry, run.dataset->tokenizer().vocab_size(), torch::kCPU);
  load_checkpoint(run.checkpoint, *run.model, nullptr);
  return run;
}

}  // namespace mixlab
