// Probe-task corpora (builtin:mqar, builtin:copy) behind the Dataset interface.
#pragma once

#include <memory>
#include <string>

#include "data/dataset.hpp"
#include "data/options.hpp"

namespace mixlab::data {

std::unique_ptr<Dataset> open_probe_dataset(const DataSpec& data, const TokenizerSpec& tok, Options& options);

}  // namespace mixlab::data
