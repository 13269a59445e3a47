// The data an experiment names: its cache folder and the opened dataset.
#pragma once

#include "data/dataset.hpp"
#include "experiment/config.hpp"

#include <filesystem>
#include <memory>

namespace mixlab {

// Where tokenizers and token shards are cached: data.cache_dir, else
// $MIXLAB_CACHE, else ~/.cache/mixlab.
std::filesystem::path data_cache_dir(const ExperimentConfig& config);

// The dataset of [data] and [tokenizer], built or loaded from the cache.
std::unique_ptr<data::Dataset> open_dataset(const ExperimentConfig& config);

}  // namespace mixlab
