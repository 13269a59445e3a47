// Checkpoints: run/checkpoints/step-NNNNNNNN/ with model.safetensors (the
// weights, readable by the Python `safetensors` package), optimizer.safetensors
// (AdamW moments, the CPU RNG state and the last step's plugin statistics) and
// trainer_state.json (train/trainer_state.hpp). Written into a temporary folder
// that is renamed into place and then marked DONE; a folder without DONE is
// never used. DONE lists each file's size and SHA-256; every reader checks them
// (verify_checkpoint) and falls back to the newest intact checkpoint.
#pragma once

#include "model/model.hpp"
#include "train/trainer_state.hpp"
#include "model/safetensors.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

namespace mixlab {

void save_checkpoint(const std::filesystem::path& run_dir, const Model& model, torch::optim::AdamW& optimizer,
                     const TrainerState& state, int64_t keep_last);

// RUN_DIR/checkpoints/step-NNNNNNNN: where the checkpoint of `step` lives.
std::filesystem::path checkpoint_dir(const std::filesystem::path& run_dir, int64_t step);

// The newest complete (DONE) checkpoint folder, if any; its files are not checked.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Copies a weights file (mixlab names) into the model's parameters. Throws naming the file and
// listing every missing, unexpected and mis-shaped tensor unless names and shapes match exactly.
void load_weights(const std::filesystem::path& file, Model& model);
void assign_weights(const SafetensorsFile& weights, const std::filesystem::path& file, Model& model);

// Checks a checkpoint's files against the sizes and SHA-256 sums its DONE lists.
// `problem` is empty when they match, else it names the damaged (or missing) file.
// A DONE written before checksums existed is empty: accepted, `verified` false.
struct CheckpointCheck {
  bool verified = false;
  std::string problem;
};
CheckpointCheck verify_checkpoint(const std::filesystem::path& checkpoint_dir);

// The newest checkpoint that passes verify_checkpoint: each newer damaged one is
// skipped with a warning naming its damaged file (and an unverified one is used
// with a warning). nullopt when the run has no complete checkpoint; throws,
// listing the damage, when every complete checkpoint is damaged.
std::optional<std::filesystem::path> newest_intact_checkpoint(const std::filesystem::path& run_dir);

// Loads weights (and, with an optimizer, its state, the RNG and the last statistics)
// into place; returns the trainer state. Refuses, naming the file and the field or
// tensor, a trainer_state.json that is garbled or disagrees with the weights or the
// model (step, tensor names, shapes, dtypes).
TrainerState load_checkpoint(const std::filesystem::path& checkpoint_dir, Model& model,
                             torch::optim::AdamW* optimizer);

}  // namespace mixlab
