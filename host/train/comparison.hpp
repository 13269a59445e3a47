// `host compare A.toml B.toml ... --seeds N`: every experiment trained with
// every seed (job.seed = first_seed + i, so data order and initialisation
// differ between seeds but not between experiments), then mean ± std across
// seeds of the final validation perplexity and train loss, parameters, time
// (the training loop's, and the wall time, which includes preparing data the
// first run of a seed pays for), tokens/s and, for MoE, the load std and dead experts; each experiment
// is set against the first. Writes DIR/comparison.json and DIR/comparison.md;
// runs live in DIR/<experiment stem>/seed-<s>/.
#pragma once

#include "train/trainer.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mixlab {

struct CompareOptions {
  std::vector<std::filesystem::path> experiments;
  int64_t seeds = 3;
  uint64_t first_seed = 0;
  std::vector<std::string> overrides;  // applied to every experiment
  std::filesystem::path output_dir;    // default: runs/compare-<utc>
  // Trains one run into its (absent) run_dir and returns the exit code. The CLI passes the
  // `host run` supervisor, so every run is a supervised worker (`--nproc` processes each).
  std::function<int(const RunOptions&)> train;
};

// Mean, sample standard deviation (n - 1; 0 for one value) and count.
struct Spread {
  double mean = 0, std = 0;
  int64_t n = 0;
};
Spread spread(const std::vector<double>& values);

// Is the difference of two means within the spread across seeds? Within when
// |mean_b - mean_a| <= 2 * sqrt(std_a^2 / n_a + std_b^2 / n_b) (two standard errors
// of the difference, about 95% under a normal approximation).
nlohmann::json compare_means(const Spread& a, const Spread& b);

// comparison.md's text for a comparison JSON.
std::string comparison_markdown(const nlohmann::json& comparison);

// Trains what is missing (a finished run folder is reused, so an interrupted
// comparison continues), writes the reports, returns the comparison JSON. A run
// that fails is reported as failed; the others still run.
nlohmann::json run_comparison(const CompareOptions& options);

}  // namespace mixlab
