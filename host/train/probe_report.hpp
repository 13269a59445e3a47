// The reports of `host probe` from its cells' results: per setting (subject x
// task x level [x width]) the best point of the optimizer grid by mean accuracy
// over seeds, with mean ± sample std over those seeds; per subject and task the
// MAD score (the mean over levels of those best accuracies); probe.md's tables
// and probe.png (MAD score by task; MQAR accuracy against width per subject).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace mixlab {

// `cells`: one result.json per cell (with "key"); `header`: suite, scale, subjects, ...
// Returns the header with "settings", "scores" and "cells" added.
nlohmann::json summarize_probe(const nlohmann::json& cells, nlohmann::json header);

std::string probe_markdown(const nlohmann::json& probe);

// Writes `png` with gnuplot; returns "" on success, else why not.
std::string plot_probe(const nlohmann::json& probe, const std::filesystem::path& png);

}  // namespace mixlab
