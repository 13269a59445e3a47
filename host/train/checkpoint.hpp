// Checkpoints: run/checkpoints/step-NNNNNNNN/ with model.safetensors (the
// weights, readable by the Python `safetensors` package), optimizer.safetensors
// (AdamW moments and the CPU RNG state) and trainer_state.json (step, tokens,
// data position, best validation loss). Written into a temporary folder that is
// renamed into place and then marked DONE; a folder without DONE is never used.
#pragma once

#include "model/model.hpp"
#include "model/safetensors.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <optional>

namespace mixlab {

struct TrainerState {
  int64_t step = 0;  // optimizer steps completed
  int64_t tokens = 0;
  uint64_t data_position = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j);
};

void save_checkpoint(const std::filesystem::path& run_dir, const Model& model, torch::optim::AdamW& optimizer,
                     const TrainerState& state, int64_t keep_last);

// The newest complete checkpoint folder, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Copies a weights file (mixlab names) into the model's parameters. Throws naming the file and
// listing every missing, unexpected and mis-shaped tensor unless names and shapes match exactly.
void load_weights(const std::filesystem::path& file, Model& model);
void assign_weights(const SafetensorsFile& weights, const std::filesystem::path& file, Model& model);

// Loads weights (and, with an optimizer, its state and the RNG) into place; returns the trainer state.
TrainerState load_checkpoint(const std::filesystem::path& checkpoint_dir, Model& model,
                             torch::optim::AdamW* optimizer);

}  // namespace mixlab
