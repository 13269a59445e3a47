// A/B swapping: one experiment built twice, once with implementation A and
// once with implementation B of one plugin, on identical weights. Compares
// numerics (per layer, logits, gradients) and speed (interleaved medians,
// peak memory), and optionally trains both copies side by side.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct AbOptions {
  std::filesystem::path experiment;
  std::vector<std::string> overrides;
  std::string swap;                 // "plugin=implA:implB"
  int64_t repeats = 5;              // timing rounds
  int64_t train_steps = 0;          // --train N
  std::string dtype = "float32";    // of the comparison
  double tolerance = 1e-4;          // relative RMS bound for outputs and gradients
  std::optional<std::filesystem::path> output;  // JSON report
};

// Prints the report; returns 0 when every difference is within the tolerance, 1 otherwise.
int run_ab(const AbOptions& options);

}  // namespace mixlab
