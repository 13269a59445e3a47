#include "train/random_draws.hpp"

#include "data/rng.hpp"

#include <torch/torch.h>

namespace mixlab {

uint64_t random_draws_seed(uint64_t job_seed, int rank, uint64_t micro_batch) {
  return data::Rng({job_seed, static_cast<uint64_t>(rank), micro_batch}).next();
}

uint64_t seed_random_draws(uint64_t job_seed, int rank, uint64_t micro_batch) {
  const uint64_t seed = random_draws_seed(job_seed, rank, micro_batch);
  torch::manual_seed(seed);
  return seed;
}

}  // namespace mixlab
