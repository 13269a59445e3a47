// Learning rate at a step: linear warm-up to the peak, then cosine, linear or
// constant decay to min_lr_factor * peak at the last step.
#pragma once

#include "experiment/config.hpp"

#include <algorithm>
#include <cmath>

namespace mixlab {

inline double learning_rate(int64_t step, const ExperimentConfig& c) {
  const double peak = c.optimizer.lr, floor = peak * c.lr_scheduler.min_lr_factor;
  const int64_t warmup = c.lr_scheduler.warmup_steps, total = c.training.steps;
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (c.lr_scheduler.decay_type == "constant" || total <= warmup) return peak;
  double progress = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - 1 - warmup)), 0.0, 1.0);
  if (c.lr_scheduler.decay_type == "linear") return peak + (floor - peak) * progress;
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace mixlab
