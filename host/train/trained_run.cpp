#include "train/trained_run.hpp"

#include "experiment/experiment_data.hpp"
#include "experiment/loader.hpp"
#include "model/safetensors.hpp"
#include "train/checkpoint.hpp"

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

ModelFolder find_model_folder(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir.string() + ": no such folder");
  if (fs::exists(dir / "experiment.toml") && fs::exists(dir / "model.safetensors"))
    return {dir / "experiment.toml", dir / "model.safetensors"};  // compile or import folder
  if (fs::exists(dir / "experiment.toml")) {
    // Damaged newer checkpoints are skipped with a warning naming the file, as --resume does.
    auto ckpt = newest_intact_checkpoint(dir);
    if (!ckpt) throw std::runtime_error(dir.string() + ": a run folder without a complete checkpoint");
    return {dir / "experiment.toml", *ckpt / "model.safetensors"};
  }
  auto normal = dir.lexically_normal();
  if (!normal.has_filename()) normal = normal.parent_path();  // "step-N/"
  auto run = normal.parent_path().parent_path();
  if (fs::exists(dir / "DONE") && fs::exists(dir / "model.safetensors") && fs::exists(run / "experiment.toml")) {
    auto check = verify_checkpoint(dir);
    if (!check.problem.empty()) throw std::runtime_error("checkpoint " + dir.string() + " is damaged: " + check.problem);
    return {run / "experiment.toml", dir / "model.safetensors"};  // a checkpoint folder of a run
  }
  if (fs::exists(dir / "config.json") && !fs::exists(dir / "experiment.toml"))
    throw std::runtime_error(dir.string() + ": not a mixlab model folder (no experiment.toml); a Hugging Face folder? "
                                            "`host import` converts one");
  throw std::runtime_error(dir.string() +
                           ": not a run, checkpoint, compile or import folder (no experiment.toml with "
                           "model.safetensors or checkpoints/)");
}

namespace {

ExperimentConfig load_folder_experiment(const std::filesystem::path& experiment) {
  return load_experiment(experiment, read_run_overrides(experiment.parent_path()));
}

int64_t vocab_of(const SafetensorsFile& weights, const std::filesystem::path& file) {
  for (const auto& [name, t] : weights.tensors)
    if (name == "embed.weight" && t.dim() == 2) return t.size(0);
  throw std::runtime_error(file.string() + ": no 2-d tensor embed.weight (not mixlab model weights)");
}

}  // namespace

TrainedRun load_trained_run(const std::filesystem::path& dir) {
  auto folder = find_model_folder(dir);
  TrainedRun run;
  run.dir = dir;
  run.weights = folder.weights;
  run.config = load_folder_experiment(folder.experiment);
  run.registry = experiment_registry(run.config);
  auto weights = load_safetensors(folder.weights);
  run.model = std::make_unique<Model>(run.config, run.registry, vocab_of(weights, folder.weights), torch::kCPU);
  assign_weights(weights, folder.weights, *run.model);
  return run;
}

data::Dataset& TrainedRun::data() {
  if (!dataset_) {
    auto dataset = open_dataset(config);
    int64_t have = dataset->tokenizer().vocab_size(), want = model->vocab_size();
    if (have != want)
      throw std::runtime_error(weights.string() + ": the model has a vocabulary of " + std::to_string(want) +
                               " tokens, the experiment's tokenizer (" + config.tokenizer.kind + " on " +
                               config.data.source + ") has " + std::to_string(have) +
                               "; text cannot be tokenized for it (token ids still work: host forward)");
    dataset_ = std::move(dataset);
  }
  return *dataset_;
}

void init_weights_from(const std::filesystem::path& dir, Model& model) {
  load_weights(find_model_folder(dir).weights, model);
}

}  // namespace mixlab
