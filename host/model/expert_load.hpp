// How evenly a layer's experts are loaded, from the share of the top-k
// assignments each one received: one rule for the run manifest, `host analyze`
// and `host compare`.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace mixlab {

// An expert is dead when it receives under 1% of its fair share (1/E).
constexpr double kDeadExpertFraction = 0.01;

// {"expert_share": [...], "load_mean", "load_std" (population std of the shares),
//  "dead_experts": [indices]} for a (E) share vector.
nlohmann::json expert_load(const torch::Tensor& share);

}  // namespace mixlab
