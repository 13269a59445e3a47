#include "data/batch.hpp"

namespace mixlab::data {

Batch allocate_batch(int64_t rows, int64_t seq_len, bool with_classes) {
  const auto options = torch::TensorOptions().dtype(torch::kInt64);
  Batch batch;
  batch.inputs = torch::empty({rows, seq_len}, options);
  batch.targets = torch::empty({rows, seq_len}, options);
  if (with_classes) batch.classes = torch::empty({rows, seq_len}, options);
  return batch;
}

void check_batch_shape(int64_t batch, int64_t seq_len) {
  if (batch < 1 || seq_len < 1)
    throw DataError("batch size and seq_len must be >= 1, got batch " + std::to_string(batch) + " and seq_len " +
                    std::to_string(seq_len));
}

void require_window(const std::string& split, int64_t tokens, int64_t seq_len) {
  if (tokens < seq_len + 1)
    throw DataError("the " + split + " split has " + std::to_string(tokens) + " tokens, fewer than the seq_len + 1 = " +
                    std::to_string(seq_len + 1) + " one window needs: use a larger corpus" +
                    (split == "validation" ? " or data.val_fraction" : "") + ", or a smaller seq_len");
}

}  // namespace mixlab::data
