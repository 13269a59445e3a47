// Text corpora (files, folders, builtin:kjv, builtin:grammar): tokenised once
// into memory-mapped token shards under the cache, then sampled as windows.
#pragma once

#include <filesystem>
#include <memory>

#include "data/dataset.hpp"
#include "data/options.hpp"

namespace mixlab::data {

std::unique_ptr<Dataset> open_text_dataset(const DataSpec& data, const TokenizerSpec& tok, Options& options,
                                           const std::filesystem::path& cache_dir);

}  // namespace mixlab::data
