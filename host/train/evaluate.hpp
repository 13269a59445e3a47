// Validation: loss, perplexity, bits per byte and (probe tasks) accuracy over
// the dataset's deterministic validation batches.
#pragma once

#include "data/dataset.hpp"
#include "model/model.hpp"

#include <map>
#include <string>

namespace mixlab {

struct Evaluation {
  double loss = 0;  // nats per scored token
  double ppl = 0;
  double bpb = 0;   // bits per UTF-8 byte (0 for probe tasks)
  double accuracy = 0;  // argmax == target over scored tokens
  int64_t tokens = 0;
  std::map<std::string, double> side;  // mean of each plugin statistic/aux loss (scalars only)
};

class DataParallel;

// With several ranks (dp), batches hold batch * world_size rows, each rank scores its slice,
// and the sums are reduced: every rank gets the single-process numbers.
Evaluation evaluate(Model& model, const data::Dataset& dataset, int64_t batch, int64_t seq_len, int64_t max_batches,
                    DataParallel* dp = nullptr);

// Cross-entropy (sum over scored tokens, count) of logits against targets (-100 ignored).
std::pair<torch::Tensor, int64_t> token_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace mixlab
