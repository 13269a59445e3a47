#include "data/probe_dataset.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <sstream>

#include "data/batch.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

constexpr uint64_t kShuffleStream = 0x73687566666c65ull;  // "shuffle"
// The unigram baseline counts the targets of at most this many train examples.
constexpr int64_t kUnigramExamples = 10000;

class ProbeDataset final : public Dataset {
 public:
  ProbeDataset(const DataSpec& data, std::unique_ptr<ProbeTask> task, const std::map<std::string, double>& options)
      : seed_(data.seed), task_(std::move(task)), tokenizer_(make_id_tokenizer(task_->vocab_size())) {
    std::ostringstream line;
    line << data.source << " (seed=" << seed_;
    for (const auto& [key, value] : options) line << " " << key << "=" << value;
    line << ") | tokenizer " << tokenizer_->id() << " | train " << task_->examples(Split::Train) << " examples, val "
         << task_->examples(Split::Val) << " examples of " << task_->example_length() << " tokens";
    description_ = line.str();
  }

  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  int64_t train_tokens() const override { return task_->examples(Split::Train) * task_->example_length(); }
  int64_t val_tokens() const override { return task_->examples(Split::Val) * task_->example_length(); }
  bool is_probe_task() const override { return true; }
  std::string describe() const override { return description_; }
  double val_bytes_per_token() const override { return 0.0; }

  double unigram_cross_entropy() const override {
    if (!unigram_cross_entropy_) {
      std::vector<double> counts(static_cast<size_t>(task_->vocab_size()), 1.0);
      double total = static_cast<double>(task_->vocab_size());
      for_each_target(Split::Train, std::min(kUnigramExamples, task_->examples(Split::Train)), [&](int64_t target) {
        counts[static_cast<size_t>(target)] += 1.0;
        total += 1.0;
      });
      double nats = 0.0;
      int64_t scored = 0;
      for_each_target(Split::Val, task_->examples(Split::Val), [&](int64_t target) {
        nats -= std::log(counts[static_cast<size_t>(target)] / total);
        ++scored;
      });
      unigram_cross_entropy_ = nats / static_cast<double>(std::max<int64_t>(scored, 1));
    }
    return *unigram_cross_entropy_;
  }

  Batch next_train(int64_t batch, int64_t seq_len) override {
    check_seq_len(batch, seq_len);
    const auto examples = static_cast<uint64_t>(task_->examples(Split::Train));
    Batch out = allocate_batch(batch, seq_len, false);
    for (int64_t row = 0; row < batch; ++row) {
      const uint64_t drawn = position_ + static_cast<uint64_t>(row);
      const int64_t index = epoch_order(drawn / examples)[drawn % examples];
      task_->generate(Split::Train, index, out.inputs[row].data_ptr<int64_t>(), out.targets[row].data_ptr<int64_t>());
    }
    position_ += static_cast<uint64_t>(batch);
    return out;
  }

  std::vector<Batch> validation(int64_t batch, int64_t seq_len, int64_t max_batches) const override {
    check_seq_len(batch, seq_len);
    const int64_t examples = task_->examples(Split::Val);
    std::vector<Batch> batches;
    for (int64_t first = 0; first < examples && (max_batches <= 0 || std::ssize(batches) < max_batches);
         first += batch) {
      const int64_t rows = std::min(batch, examples - first);
      Batch out = allocate_batch(rows, seq_len, false);
      for (int64_t row = 0; row < rows; ++row)
        task_->generate(Split::Val, first + row, out.inputs[row].data_ptr<int64_t>(),
                        out.targets[row].data_ptr<int64_t>());
      batches.push_back(std::move(out));
    }
    return batches;
  }

 private:
  void check_seq_len(int64_t batch, int64_t seq_len) const {
    check_batch_shape(batch, seq_len);
    if (seq_len != task_->example_length())
      throw DataError("builtin:" + task_->name() + " examples are " + std::to_string(task_->example_length()) +
                      " tokens long but seq_len is " + std::to_string(seq_len) +
                      ": set the training seq_len to the task's input_seq_len");
  }

  // The train examples in the shuffled order of `epoch` (each epoch its own permutation).
  const std::vector<int64_t>& epoch_order(uint64_t epoch) {
    if (order_.empty() || order_epoch_ != epoch) {
      order_.resize(static_cast<size_t>(task_->examples(Split::Train)));
      std::iota(order_.begin(), order_.end(), int64_t{0});
      Rng rng({seed_, kShuffleStream, epoch});
      for (size_t i = order_.size() - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
      order_epoch_ = epoch;
    }
    return order_;
  }

  template <typename Visit>
  void for_each_target(Split split, int64_t examples, Visit visit) const {
    const int64_t length = task_->example_length();
    std::vector<int64_t> inputs(static_cast<size_t>(length)), targets(static_cast<size_t>(length));
    for (int64_t index = 0; index < examples; ++index) {
      task_->generate(split, index, inputs.data(), targets.data());
      for (int64_t target : targets)
        if (target != kIgnoreTarget) visit(target);
    }
  }

  uint64_t seed_;
  std::unique_ptr<ProbeTask> task_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string description_;
  std::vector<int64_t> order_;
  uint64_t order_epoch_ = 0;
  mutable std::optional<double> unigram_cross_entropy_;
};

using Factory = std::unique_ptr<ProbeTask> (*)(uint64_t seed, Options& options);

const std::vector<std::pair<std::string, Factory>>& factories() {
  static const std::vector<std::pair<std::string, Factory>> table = {
      {"builtin:mqar", make_mqar},
      {"builtin:copy", make_selective_copy},
      {"builtin:recall", make_recall},
      {"builtin:noisy_recall", make_noisy_recall},
      {"builtin:fuzzy_recall", make_fuzzy_recall},
      {"builtin:memorization", make_memorization},
      {"builtin:compression", make_compression}};
  return table;
}

}  // namespace

const std::vector<std::string>& probe_sources() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, make] : factories()) out.push_back(name);
    return out;
  }();
  return names;
}

bool is_probe_source(const std::string& source) {
  const auto& names = probe_sources();
  return std::find(names.begin(), names.end(), source) != names.end();
}

std::unique_ptr<Dataset> open_probe_dataset(const DataSpec& data, const TokenizerSpec& tok, Options& options) {
  if (tok.kind != "byte" && tok.kind != "ids")
    throw DataError(data.source +
                    " is a probe task with its own id vocabulary: leave the tokenizer kind at its default (got \"" +
                    tok.kind + "\")");
  const auto& table = factories();
  const auto found = std::find_if(table.begin(), table.end(), [&](const auto& entry) { return entry.first == data.source; });
  if (found == table.end()) throw DataError(data.source + " is not a probe task");
  std::unique_ptr<ProbeTask> task = found->second(data.seed, options);
  options.finish();
  return std::make_unique<ProbeDataset>(data, std::move(task), options.resolved());
}

}  // namespace mixlab::data
