// A model folder loaded back: its experiment, the plugins and the model with its
// weights. Used by generate, forward, analyze, export and `run --init-from`.
// Three kinds of folder hold a model:
//   a run folder         experiment.toml + checkpoints/step-N/ (the newest complete one is used),
//                        or one of its checkpoint folders given directly;
//   a compile folder     experiment.toml + model.safetensors (`host compile`);
//   an import folder     the same layout (`host import` from a Hugging Face folder).
// The vocabulary is the weights' (embed.weight); the tokenizer, needed only to
// turn text into ids, is built from the experiment's data on first use and must
// have the same vocabulary.
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

// Where a model folder's weights and experiment are.
struct ModelFolder {
  std::filesystem::path experiment;  // experiment.toml (overrides.json beside it)
  std::filesystem::path weights;     // model.safetensors with mixlab names
};
// Throws std::runtime_error naming the folder when it is none of the three kinds.
ModelFolder find_model_folder(const std::filesystem::path& dir);

class TrainedRun {
 public:
  std::filesystem::path dir;
  std::filesystem::path weights;  // the model.safetensors loaded
  ExperimentConfig config;
  Registry registry;
  std::unique_ptr<Model> model;

  // The experiment's data and tokenizer, opened on first use; throws when the
  // tokenizer's vocabulary differs from the model's (a compile folder planned with
  // more SentencePiece pieces than the corpus gives, an imported model).
  data::Dataset& data();

 private:
  std::unique_ptr<data::Dataset> dataset_;
};

// The --set overrides a run was started with (RUN_DIR/overrides.json; none when absent).
// Throws std::runtime_error naming the file when it is not a JSON list of strings.
std::vector<std::string> read_run_overrides(const std::filesystem::path& run_dir);

TrainedRun load_trained_run(const std::filesystem::path& dir);

// `host run --init-from DIR`: copies DIR's weights into a freshly built model;
// throws with the per-tensor list when names or shapes differ.
void init_weights_from(const std::filesystem::path& dir, Model& model);

}  // namespace mixlab
