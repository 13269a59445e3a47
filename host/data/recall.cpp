// builtin:recall and builtin:noisy_recall — MAD's (multi-query) in-context
// recall and noisy in-context recall (Poli et al. 2024, "Mechanistic Design and
// Scaling of Hybrid Architectures", sec. 3.1), written from the paper's definition:
//   vocabulary  keys [0, K), values [K, 2K), noise [V - Vn, V), K = (V - Vn) / 2;
//   sequence    T/2 two-token slots; each is a noise pair (probability
//               frac_noise) or a key and its value. A key's value is drawn
//               when the key first appears and kept for the rest of the sequence;
//               one slot among the first T/2 - 1 is never noise, and the last
//               slot repeats a key already shown, so every example has a query;
//   targets     train: every next token (MAD trains on all of them);
//               val: only the values of keys shown earlier in the sequence, the
//               target at the key (targets are shifted: they predict the next input).
// noisy_recall is the same task with noise by default (V = 32, Vn = 16, 20%).
#include <unordered_map>
#include <vector>

#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

class Recall final : public ProbeTask {
 public:
  Recall(std::string name, uint64_t seed, Options& options, bool noisy)
      : name_(std::move(name)),
        seed_(seed),
        vocab_size_(options.integer("vocab_size", noisy ? 32 : 16, 3)),
        length_(options.integer("input_seq_len", 128, 4)),
        noise_vocab_(options.integer("noise_vocab_size", noisy ? 16 : 0, 0)),
        frac_noise_(options.real("frac_noise", noisy ? 0.2 : 0.0, 0.0, 0.95)),
        train_examples_(options.integer("train_examples", 12800, 1)),
        val_examples_(options.integer("val_examples", 1280, 1)) {
    const auto fail = [&](const std::string& what) { throw DataError("builtin:" + name_ + ": " + what); };
    if (length_ % 2 != 0) fail("input_seq_len must be even, got " + std::to_string(length_));
    if ((vocab_size_ - noise_vocab_) / 2 < 1)
      fail("vocab_size (" + std::to_string(vocab_size_) + ") minus noise_vocab_size (" + std::to_string(noise_vocab_) +
           ") leaves no keys and values: it must be at least 2");
    if (frac_noise_ > 0 && noise_vocab_ == 0) fail("frac_noise > 0 needs noise_vocab_size > 0");
  }

  std::string name() const override { return name_; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x726563616c6cull /* "recall" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    const int64_t keys = (vocab_size_ - noise_vocab_) / 2;
    const int64_t noise_start = vocab_size_ - noise_vocab_;
    const int64_t slots = length_ / 2;
    const int64_t never_noise = static_cast<int64_t>(rng.below(static_cast<uint64_t>(slots - 1)));
    std::unordered_map<int64_t, int64_t> value_of;
    std::vector<int64_t> shown;  // distinct keys in order of first appearance
    std::vector<bool> query(static_cast<size_t>(slots), false);
    for (int64_t slot = 0; slot < slots; ++slot) {
      int64_t* pair = inputs + 2 * slot;
      const bool last = slot == slots - 1;
      if (!last && slot != never_noise && frac_noise_ > 0 && rng.uniform() < frac_noise_) {
        for (int i = 0; i < 2; ++i)
          pair[i] = noise_start + static_cast<int64_t>(rng.below(static_cast<uint64_t>(noise_vocab_)));
        continue;
      }
      const int64_t key = last ? shown[rng.below(shown.size())] : static_cast<int64_t>(rng.below(keys));
      auto [found, fresh] = value_of.try_emplace(key, 0);
      if (fresh) {
        found->second = keys + static_cast<int64_t>(rng.below(static_cast<uint64_t>(keys)));
        shown.push_back(key);
      }
      query[static_cast<size_t>(slot)] = !fresh;
      pair[0] = key;
      pair[1] = found->second;
    }
    for (int64_t t = 0; t < length_; ++t) {
      const bool scored = split == Split::Train ? t + 1 < length_ : t % 2 == 0 && query[static_cast<size_t>(t / 2)];
      targets[t] = scored ? inputs[t + 1] : kIgnoreTarget;
    }
  }

 private:
  std::string name_;
  uint64_t seed_;
  int64_t vocab_size_, length_, noise_vocab_;
  double frac_noise_;
  int64_t train_examples_, val_examples_;
};

}  // namespace

std::unique_ptr<ProbeTask> make_recall(uint64_t seed, Options& options) {
  return std::make_unique<Recall>("recall", seed, options, false);
}

std::unique_ptr<ProbeTask> make_noisy_recall(uint64_t seed, Options& options) {
  return std::make_unique<Recall>("noisy_recall", seed, options, true);
}

}  // namespace mixlab::data
