// Allocating batches and checking the sizes asked of a dataset.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.hpp"

namespace mixlab::data {

// (rows, seq_len) int64 CPU tensors; `classes` only when with_classes.
Batch allocate_batch(int64_t rows, int64_t seq_len, bool with_classes);

// Throws DataError unless batch >= 1 and seq_len >= 1.
void check_batch_shape(int64_t batch, int64_t seq_len);

// Throws DataError when a split of `tokens` tokens cannot give one window of seq_len + 1.
void require_window(const std::string& split, int64_t tokens, int64_t seq_len);

}  // namespace mixlab::data
