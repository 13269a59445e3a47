// builtin:fuzzy_recall — MAD's fuzzy (multi-query) in-context recall (Poli et
// al. 2024, sec. 3.1), written from the paper's definition: keys and values
// are motifs of several adjacent tokens, so the model must find where a key
// ends and recall a variable-length value.
//   vocabulary  keys [0, K), values [K, 2K), noise [2K, 2K + Vn), pad V - 1,
//               K = (V - 1 - Vn) / 2; a motif is distinct tokens of its range;
//   motif sizes keys 1..k_motif_size (val: always k_motif_size, MAD's test
//               setting), values 1..v_motif_size, uniform per pair;
//   sequence    key-value pairs (or, with probability frac_noise, a run of noise
//               of the same length) while they fit; a key's value is fixed at its
//               first appearance. The probe pair is placed at a random boundary
//               among them and repeated at the end, so every example has a query;
//               the sequence is left-padded to T + 1 tokens and shifted;
//   targets     train: every next token that is not padding;
//               val: the value tokens of keys shown earlier in the sequence.
// Keys, values, noise and pad come from disjoint ranges, so the motif boundaries
// and hence the answers are determined by the input.
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

using Motif = std::vector<int64_t>;

// `size` distinct tokens of [low, low + range), in random order (partial Fisher-Yates).
Motif draw_motif(Rng& rng, int64_t low, int64_t range, int64_t size) {
  Motif pool(static_cast<size_t>(range));
  std::iota(pool.begin(), pool.end(), low);
  for (int64_t i = 0; i < size; ++i)
    std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(i) + rng.below(pool.size() - static_cast<size_t>(i))]);
  pool.resize(static_cast<size_t>(size));
  return pool;
}

class FuzzyRecall final : public ProbeTask {
 public:
  FuzzyRecall(uint64_t seed, Options& options)
      : seed_(seed),
        vocab_size_(options.integer("vocab_size", 16, 4)),
        length_(options.integer("input_seq_len", 128, 4)),
        key_motif_(options.integer("k_motif_size", 3, 1)),
        value_motif_(options.integer("v_motif_size", 3, 1)),
        noise_vocab_(options.integer("noise_vocab_size", 0, 0)),
        frac_noise_(options.real("frac_noise", 0.0, 0.0, 0.95)),
        train_examples_(options.integer("train_examples", 12800, 1)),
        val_examples_(options.integer("val_examples", 1280, 1)) {
    const auto fail = [](const std::string& what) { throw DataError("builtin:fuzzy_recall: " + what); };
    const int64_t half = (vocab_size_ - 1 - noise_vocab_) / 2;
    if (half < std::max(key_motif_, value_motif_))
      fail("(vocab_size - 1 - noise_vocab_size) / 2 = " + std::to_string(half) +
           " tokens per range cannot hold a motif of " + std::to_string(std::max(key_motif_, value_motif_)) +
           " distinct tokens: raise vocab_size or lower k_motif_size / v_motif_size");
    if (length_ + 1 < 2 * (key_motif_ + value_motif_))
      fail("input_seq_len (" + std::to_string(length_) + ") must be at least 2 * (k_motif_size + v_motif_size) - 1 = " +
           std::to_string(2 * (key_motif_ + value_motif_) - 1) + " to hold the probe pair twice");
    if (frac_noise_ > 0 && noise_vocab_ == 0) fail("frac_noise > 0 needs noise_vocab_size > 0");
  }

  std::string name() const override { return "fuzzy_recall"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x66757a7a79ull /* "fuzzy" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    const int64_t half = (vocab_size_ - 1 - noise_vocab_) / 2;
    const int64_t pad = vocab_size_ - 1;
    const auto key_size = [&] {
      return split == Split::Val ? key_motif_ : 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(key_motif_)));
    };
    const auto value_size = [&] { return 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(value_motif_))); };

    // A segment is a key and its value, or a run of noise (empty key).
    struct Segment {
      Motif key, value;
    };
    std::map<Motif, Motif> value_of;
    const Motif probe_key = draw_motif(rng, 0, half, key_size());
    const Motif probe_value = draw_motif(rng, half, half, value_size());
    value_of[probe_key] = probe_value;
    const int64_t probe_length = std::ssize(probe_key) + std::ssize(probe_value);

    std::vector<Segment> body;
    int64_t used = 0;
    const int64_t budget = length_ + 1 - 2 * probe_length;  // room left by the probe pair, twice
    while (used + key_motif_ + value_motif_ <= budget) {
      const int64_t k = key_size(), v = value_size();
      if (frac_noise_ > 0 && rng.uniform() < frac_noise_) {
        Motif noise(static_cast<size_t>(k + v));
        for (auto& token : noise) token = 2 * half + static_cast<int64_t>(rng.below(static_cast<uint64_t>(noise_vocab_)));
        body.push_back(Segment{{}, std::move(noise)});
      } else {
        Motif key = draw_motif(rng, 0, half, k);
        auto [found, fresh] = value_of.try_emplace(key);
        if (fresh) found->second = draw_motif(rng, half, half, v);
        body.push_back(Segment{std::move(key), found->second});
      }
      used += std::ssize(body.back().key) + std::ssize(body.back().value);
    }
    body.insert(body.begin() + static_cast<std::ptrdiff_t>(rng.below(body.size() + 1)), Segment{probe_key, probe_value});
    body.push_back(Segment{probe_key, probe_value});

    // Lay out T + 1 tokens (left padding), marking the value tokens of repeated keys.
    std::vector<int64_t> tokens(static_cast<size_t>(length_ + 1 - used - 2 * probe_length), pad);
    std::vector<bool> recalled(tokens.size(), false);
    std::set<Motif> seen;
    for (const auto& segment : body) {
      const bool repeat = !segment.key.empty() && !seen.insert(segment.key).second;
      for (int64_t token : segment.key) tokens.push_back(token), recalled.push_back(false);
      for (int64_t token : segment.value) tokens.push_back(token), recalled.push_back(repeat);
    }
    for (int64_t t = 0; t < length_; ++t) {
      inputs[t] = tokens[static_cast<size_t>(t)];
      const auto next = static_cast<size_t>(t + 1);
      const bool scored = split == Split::Train ? tokens[next] != pad : static_cast<bool>(recalled[next]);
      targets[t] = scored ? tokens[next] : kIgnoreTarget;
    }
  }

 private:
  uint64_t seed_;
  int64_t vocab_size_, length_, key_motif_, value_motif_, noise_vocab_;
  double frac_noise_;
  int64_t train_examples_, val_examples_;
};

}  // namespace

std::unique_ptr<ProbeTask> make_fuzzy_recall(uint64_t seed, Options& options) {
  return std::make_unique<FuzzyRecall>(seed, options);
}

}  // namespace mixlab::data
