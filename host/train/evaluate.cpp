#include "train/evaluate.hpp"

#include <cmath>

namespace mixlab {

std::pair<torch::Tensor, int64_t> token_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto flat = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32);
  auto t = targets.reshape({-1});
  auto sum = torch::nn::functional::cross_entropy(
      flat, t, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {sum, (t != -100).sum().item<int64_t>()};
}

Evaluation evaluate(Model& model, const data::Dataset& dataset, int64_t batch, int64_t seq_len, int64_t max_batches) {
  torch::NoGradGuard no_grad;
  Evaluation e;
  double loss_sum = 0;
  int64_t correct = 0, n_side = 0;
  for (const auto& b : dataset.validation(batch, seq_len, max_batches)) {
    auto inputs = b.inputs.to(model.device()), targets = b.targets.to(model.device());
    auto out = model.forward(inputs, false, 0);
    auto [sum, count] = token_loss_sum(out.logits, targets);
    loss_sum += sum.item<double>();
    e.tokens += count;
    auto scored = targets != -100;
    correct += (out.logits.argmax(-1).eq(targets) & scored).sum().item<int64_t>();
    for (const auto& s : out.sides)
      if (s.value.numel() == 1) e.side[s.name] += s.value.item<double>();
    ++n_side;
  }
  if (e.tokens == 0) throw std::runtime_error("validation produced no scored tokens");
  for (auto& [k, v] : e.side) v /= static_cast<double>(n_side);
  e.loss = loss_sum / static_cast<double>(e.tokens);
  e.ppl = std::exp(e.loss);
  double bytes_per_token = dataset.val_bytes_per_token();
  e.bpb = bytes_per_token > 0 ? e.loss / std::log(2.0) / bytes_per_token : 0.0;
  e.accuracy = static_cast<double>(correct) / static_cast<double>(e.tokens);
  return e;
}

}  // namespace mixlab
