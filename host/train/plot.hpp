// The loss-curve PNG of a run (train and validation loss against step),
// drawn by gnuplot from metrics.jsonl.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

// Writes run_dir/loss.png; returns an empty string on success, else why not.
std::string plot_loss_curve(const std::filesystem::path& run_dir, const std::string& title);

}  // namespace mixlab
