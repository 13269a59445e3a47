// The random draws of a training micro-batch (dropout masks, plugin noise such as router
// jitter) come from a seed that is a pure function of the run's seed, the rank and the
// micro-batch's index in the run: every rank of a data-parallel run draws its own masks, and
// a resumed run draws exactly the uninterrupted run's, with no generator state to carry.
#pragma once

#include <cstdint>

namespace mixlab {

uint64_t random_draws_seed(uint64_t job_seed, int rank, uint64_t micro_batch);

// Seeds LibTorch's global generators (CPU, and CUDA when present; torch::dropout draws from
// them) with random_draws_seed and returns it: the seed the model hands its plugins.
uint64_t seed_random_draws(uint64_t job_seed, int rank, uint64_t micro_batch);

}  // namespace mixlab
