// builtin:memorization — MAD's memorization (Poli et al. 2024, sec. 3.1),
// written from the paper's definition: a fixed key-value map, the same for
// every example of both splits, that the model can only learn into its weights.
//   vocabulary  keys [0, K), values [K, V - 1), insert token V - 1, K = (V - 1) / 2;
//   the map     key i -> a distinct value, a random injection drawn from the seed
//               alone (not the split or example);
//   sequence    T/2 slots "key, insert"; the target at the insert token is the
//               key's value, every other target is -100 (not shifted: the model
//               answers when it reads the insert token).
// Harder levels raise vocab_size: more facts to store.
#include <numeric>
#include <vector>

#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

class Memorization final : public ProbeTask {
 public:
  Memorization(uint64_t seed, Options& options)
      : seed_(seed),
        vocab_size_(options.integer("vocab_size", 256, 4)),
        length_(options.integer("input_seq_len", 32, 2)),
        train_examples_(options.integer("train_examples", 256, 1)),
        val_examples_(options.integer("val_examples", 1280, 1)) {
    if (length_ % 2 != 0)
      throw DataError("builtin:memorization: input_seq_len must be even, got " + std::to_string(length_));
    const int64_t keys = (vocab_size_ - 1) / 2;
    std::vector<int64_t> values(static_cast<size_t>(vocab_size_ - 1 - keys));
    std::iota(values.begin(), values.end(), keys);
    Rng rng({seed_, 0x6d656d6f7279ull /* "memory" */});
    for (size_t i = values.size() - 1; i > 0; --i) std::swap(values[i], values[rng.below(i + 1)]);
    values.resize(static_cast<size_t>(keys));
    value_of_ = std::move(values);
  }

  std::string name() const override { return "memorization"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x6d656d6full /* "memo" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    for (int64_t t = 0; t < length_; t += 2) {
      const auto key = rng.below(value_of_.size());
      inputs[t] = static_cast<int64_t>(key);
      inputs[t + 1] = vocab_size_ - 1;
      targets[t] = kIgnoreTarget;
      targets[t + 1] = value_of_[key];
    }
  }

 private:
  uint64_t seed_;
  int64_t vocab_size_, length_;
  int64_t train_examples_, val_examples_;
  std::vector<int64_t> value_of_;  // the value of key i
};

}  // namespace

std::unique_ptr<ProbeTask> make_memorization(uint64_t seed, Options& options) {
  return std::make_unique<Memorization>(seed, options);
}

}  // namespace mixlab::data
