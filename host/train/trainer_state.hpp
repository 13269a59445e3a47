// trainer_state.json of a checkpoint: everything besides weights, moments and
// the RNG that the training loop needs to continue exactly where it stopped,
// including what the next logged line and the final manifest depend on.
#pragma once

#include "train/evaluate.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>

namespace mixlab {

struct TrainerState {
  int64_t step = 0;  // optimizer steps completed
  int64_t tokens = 0;
  uint64_t data_position = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  // The losses since the last train/loss line: metrics.log_every need not divide checkpoint.every.
  double window_loss = 0;
  int64_t window_steps = 0;
  // The last step and validation: the manifest of a run resumed after its final checkpoint reports them.
  double last_loss = std::nan("");
  double last_grad_norm = 0;
  std::optional<Evaluation> last_eval;  // without `side` (the manifest does not report it)
  std::map<std::string, torch::Tensor> last_stats;  // plugin statistics of the last step; kept in optimizer.safetensors

  nlohmann::json to_json() const;
  // Throws std::runtime_error naming `file` and the field that is missing, mistyped or out of
  // range. The window and last-step fields are optional: checkpoints written before they existed
  // resume with an empty window (the logged average then restarts, as it did before).
  static TrainerState from_json(const nlohmann::json& j, const std::string& file);
};

}  // namespace mixlab
