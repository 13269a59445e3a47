#include "train/trained_run.hpp"

#include "experiment/loader.hpp"
#include "train/checkpoint.hpp"
#include "experiment/experiment_data.hpp"

#include <fstream>

namespace mixlab {

TrainedRun load_trained_run(const std::filesystem::path& run_dir) {
  TrainedRun run;
  run.dir = run_dir;
  if (!std::filesystem::exists(run_dir / "experiment.toml"))
    throw std::runtime_error(run_dir.string() + ": not a run folder (no experiment.toml)");
  std::ifstream in(run_dir / "overrides.json");
  auto overrides = in ? nlohmann::json::parse(in).get<std::vector<std::string>>() : std::vector<std::string>{};
  run.config = load_experiment(run_dir / "experiment.toml", overrides);
  auto ckpt = latest_checkpoint(run_dir);
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
