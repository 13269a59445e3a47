// The AdamW a run trains with: two parameter groups, the weights that decay
// (optimizer.weight_decay) and those that do not (norm gains, biases: the plugins'
// parameter specs say which), with the experiment's lr, betas and eps.
#pragma once

#include "experiment/config.hpp"
#include "model/model.hpp"

#include <torch/torch.h>

#include <memory>

namespace mixlab {

std::unique_ptr<torch::optim::AdamW> make_adamw(const ExperimentConfig& config, const Model& model);

}  // namespace mixlab
