// PNG plots drawn by gnuplot (pngcairo): the loss curve of a run, and a runner
// for the other figures (routing analysis, comparisons).
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

// Runs gnuplot `commands` (everything after the terminal and output lines) and
// writes `png` atomically (temporary file, rename). Returns "" on success, else why not.
std::string run_gnuplot(const std::filesystem::path& png, const std::string& commands, int width = 900,
                        int height = 540);

// Writes run_dir/loss.png from metrics.jsonl; returns "" on success, else why not.
std::string plot_loss_curve(const std::filesystem::path& run_dir, const std::string& title);

}  // namespace mixlab
