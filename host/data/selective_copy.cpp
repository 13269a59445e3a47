// builtin:copy — MAD's selective copying (athms/mad-lab, mad/data/instances.py,
// generate_copying_instance with selective=True), seeded (upstream once drew
// the blank positions from the global numpy generator):
//   n tokens drawn from [0, V-2) with num_blank = T - 2n - 1 blanks (id V-2)
//   inserted before them at random, then the copy token (V-1), then n blanks;
//   targets are -100 up to the copy token, then the n tokens in order.
#include <vector>

#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

class SelectiveCopy final : public ProbeTask {
 public:
  SelectiveCopy(uint64_t seed, Options& options)
      : seed_(seed),
        vocab_size_(options.integer("vocab_size", 16, 3)),
        length_(options.integer("input_seq_len", 256, 4)),
        copies_(options.integer("num_tokens_to_copy", 16, 1)),
        train_examples_(options.integer("train_examples", 12800, 1)),
        val_examples_(options.integer("val_examples", 1280, 1)) {
    if (length_ <= 2 * copies_ + 1)
      throw DataError("builtin:copy: input_seq_len (" + std::to_string(length_) +
                      ") must exceed 2 * num_tokens_to_copy + 1 (" + std::to_string(2 * copies_ + 1) + ")");
  }

  std::string name() const override { return "copy"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x636f7079ull /* "copy" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    const int64_t blank = vocab_size_ - 2;
    const int64_t copy = vocab_size_ - 1;
    const int64_t blanks = length_ - 2 * copies_ - 1;
    std::vector<int64_t> to_copy(static_cast<size_t>(copies_));
    for (auto& token : to_copy) token = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocab_size_ - 2)));
    // numpy.insert(tokens, indices in [0, n), blank): blanks_before[i] land just before token i.
    std::vector<int64_t> blanks_before(static_cast<size_t>(copies_), 0);
    for (int64_t b = 0; b < blanks; ++b) ++blanks_before[rng.below(static_cast<uint64_t>(copies_))];

    int64_t t = 0;
    for (int64_t i = 0; i < copies_; ++i) {
      for (int64_t b = 0; b < blanks_before[static_cast<size_t>(i)]; ++b) inputs[t++] = blank;
      inputs[t++] = to_copy[static_cast<size_t>(i)];
    }
    inputs[t++] = copy;
    std::fill(targets, targets + t, kIgnoreTarget);
    for (int64_t i = 0; i < copies_; ++i, ++t) {
      inputs[t] = blank;
      targets[t] = to_copy[static_cast<size_t>(i)];
    }
  }

 private:
  uint64_t seed_;
  int64_t vocab_size_, length_, copies_;
  int64_t train_examples_, val_examples_;
};

}  // namespace

std::unique_ptr<ProbeTask> make_selective_copy(uint64_t seed, Options& options) {
  return std::make_unique<SelectiveCopy>(seed, options);
}

}  // namespace mixlab::data
