#include "model/expert_load.hpp"

namespace mixlab {

nlohmann::json expert_load(const torch::Tensor& share) {
  auto s = share.to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t experts = s.numel();
  const double fair = 1.0 / static_cast<double>(experts);
  std::vector<double> values(s.data_ptr<double>(), s.data_ptr<double>() + experts);
  nlohmann::json dead = nlohmann::json::array();
  for (int64_t e = 0; e < experts; ++e)
    if (values[static_cast<size_t>(e)] < kDeadExpertFraction * fair) dead.push_back(e);
  return {{"expert_share", values},
          {"load_mean", s.mean().item<double>()},
          {"load_std", s.std(/*unbiased=*/false).item<double>()},
          {"dead_experts", dead}};
}

}  // namespace mixlab
