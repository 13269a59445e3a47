// Probe-task corpora (builtin:mqar, builtin:copy, the MAD tasks) behind the Dataset interface.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/options.hpp"

namespace mixlab::data {

// "builtin:mqar", "builtin:copy", "builtin:recall", "builtin:noisy_recall", "builtin:fuzzy_recall",
// "builtin:memorization", "builtin:compression" (for a model with the autoencoder readout).
const std::vector<std::string>& probe_sources();
bool is_probe_source(const std::string& source);

std::unique_ptr<Dataset> open_probe_dataset(const DataSpec& data, const TokenizerSpec& tok, Options& options);

}  // namespace mixlab::data
