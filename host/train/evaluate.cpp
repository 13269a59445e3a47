#include "train/evaluate.hpp"

#include "train/data_parallel.hpp"

#include <algorithm>
#include <cmath>

namespace mixlab {

std::pair<torch::Tensor, int64_t> token_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto flat = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32);
  auto t = targets.reshape({-1});
  auto sum = torch::nn::functional::cross_entropy(
      flat, t, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {sum, (t != -100).sum().item<int64_t>()};
}

Evaluation evaluate(Model& model, const data::Dataset& dataset, int64_t batch, int64_t seq_len, int64_t max_batches,
                    DataParallel* dp) {
  torch::NoGradGuard no_grad;
  Evaluation e;
  double loss_sum = 0, correct = 0, n_side = 0;
  // Several ranks: the validation batches of the global batch size, each rank scoring its slice
  // of rows, so the set of batches is the single process's with batch = batch * world size.
  const int64_t ranks = dp ? dp->world_size() : 1, rank = dp ? dp->rank() : 0;
  for (const auto& b : dataset.validation(batch * ranks, seq_len, max_batches)) {
    const int64_t first = std::min(rank * batch, b.inputs.size(0)), rows = std::min(batch, b.inputs.size(0) - first);
    if (rows == 0) continue;
    auto inputs = b.inputs.narrow(0, first, rows).to(model.device());
    auto targets = b.targets.narrow(0, first, rows).to(model.device());
    auto out = model.forward(inputs, false, 0);
    auto [sum, count] = token_loss_sum(out.logits, targets);
    loss_sum += sum.item<double>();
    e.tokens += count;
    auto scored = targets != -100;
    correct += static_cast<double>((out.logits.argmax(-1).eq(targets) & scored).sum().item<int64_t>());
    for (const auto& s : out.sides)
      if (s.value.numel() == 1) e.side[s.name] += s.value.item<double>();
    ++n_side;
  }
  if (ranks > 1) {
    auto sums = dp->sum({loss_sum, static_cast<double>(e.tokens), correct, n_side, static_cast<double>(e.side.size())});
    loss_sum = sums[0], e.tokens = static_cast<int64_t>(sums[1]), correct = sums[2], n_side = sums[3];
    // Plugin statistics only when every rank scored rows (a tiny split may leave some without).
    if (sums[4] == static_cast<double>(ranks * std::ssize(e.side))) {
      std::vector<double> side;
      for (const auto& [k, v] : e.side) side.push_back(v);
      side = dp->sum(side);
      size_t next = 0;
      for (auto& [k, v] : e.side) v = side[next++];
    } else {
      e.side.clear();
    }
  }
  if (e.tokens == 0) throw std::runtime_error("validation produced no scored tokens");
  for (auto& [k, v] : e.side) v /= n_side;
  e.loss = loss_sum / static_cast<double>(e.tokens);
  e.ppl = std::exp(e.loss);
  double bytes_per_token = dataset.val_bytes_per_token();
  e.bpb = bytes_per_token > 0 ? e.loss / std::log(2.0) / bytes_per_token : 0.0;
  e.accuracy = correct / static_cast<double>(e.tokens);
  return e;
}

}  // namespace mixlab
