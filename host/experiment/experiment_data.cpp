#include "experiment/experiment_data.hpp"

#include <cstdlib>

namespace mixlab {

std::filesystem::path data_cache_dir(const ExperimentConfig& config) {
  if (!config.data.cache_dir.empty()) return config.data.cache_dir;
  if (const char* env = std::getenv("MIXLAB_CACHE")) return env;
  if (const char* home = std::getenv("HOME")) return std::filesystem::path(home) / ".cache" / "mixlab";
  return std::filesystem::temp_directory_path() / "mixlab-cache";
}

std::unique_ptr<data::Dataset> open_dataset(const ExperimentConfig& c) {
  return data::Dataset::open({c.data.source, c.data.val_fraction, c.job.seed, c.data.options},
                             {c.tokenizer.kind, c.tokenizer.model_type, c.tokenizer.vocab_size, c.tokenizer.model_file},
                             data_cache_dir(c));
}

}  // namespace mixlab
