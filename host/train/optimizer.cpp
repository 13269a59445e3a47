#include "train/optimizer.hpp"

namespace mixlab {

std::unique_ptr<torch::optim::AdamW> make_adamw(const ExperimentConfig& config, const Model& model) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model.parameters()) (p.weight_decay ? decay : no_decay).push_back(p.tensor);
  auto adam = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.optimizer.lr)
                                                            .betas({config.optimizer.betas[0], config.optimizer.betas[1]})
                                                            .eps(config.optimizer.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, adam(config.optimizer.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, adam(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(config.optimizer.lr));
}

}  // namespace mixlab
