// builtin:mqar — multi-query associative recall, a port of zoology's
// `multiquery_ar` (zoology/data/multiquery_ar.py) with our seeded generator:
//   context  k1 v1 ... kK vK (repeated num_passes times), keys drawn without
//            replacement from [1, V/2), values from [V/2, V);
//   queries  each key again at offset context + 2*gap, gaps drawn without
//            replacement with p(g) ∝ (g+1)^(a-1), g in [0, (T - context)/2);
//   labels   the value at the query position, -100 elsewhere (after the shift);
//   fillers  0, or uniform ids in [0, V) when random_non_queries (zoology's default).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "data/error.hpp"
#include "data/probe_task.hpp"
#include "data/rng.hpp"

namespace mixlab::data {

namespace {

class Mqar final : public ProbeTask {
 public:
  Mqar(uint64_t seed, Options& options)
      : seed_(seed),
        vocab_size_(options.integer("vocab_size", 8192, 4)),
        length_(options.integer("input_seq_len", 64, 4)),
        pairs_(options.integer("num_kv_pairs", 4, 1)),
        passes_(options.integer("num_passes", 1, 1)),
        power_a_(options.real("power_a", 0.01, 1e-6, 1.0)),
        random_non_queries_(options.flag("random_non_queries", true)),
        train_examples_(options.integer("train_examples", 100000, 1)),
        val_examples_(options.integer("val_examples", 3000, 1)) {
    const auto fail = [](const std::string& what) { throw DataError("builtin:mqar: " + what); };
    if (length_ % 2 != 0) fail("input_seq_len must be even, got " + std::to_string(length_));
    if (vocab_size_ <= length_)
      fail("vocab_size (" + std::to_string(vocab_size_) + ") must exceed input_seq_len (" + std::to_string(length_) +
           ")");
    if (2 * pairs_ * passes_ + 2 * pairs_ > length_)
      fail("num_kv_pairs * 2 * (num_passes + 1) = " + std::to_string(2 * pairs_ * (passes_ + 1)) +
           " must be <= input_seq_len (" + std::to_string(length_) + ")");
    if (pairs_ > vocab_size_ / 2 - 1)
      fail("num_kv_pairs (" + std::to_string(pairs_) + ") exceeds the " + std::to_string(vocab_size_ / 2 - 1) +
           " keys in [1, vocab_size/2)");
    // Unnormalised gap weights; numpy's p = a * g^(a-1) / sum differs by a constant.
    const int64_t space = (length_ - 2 * pairs_ * passes_) / 2;
    gap_weights_.resize(static_cast<size_t>(space));
    for (int64_t g = 0; g < space; ++g) gap_weights_[static_cast<size_t>(g)] = std::pow(g + 1.0, power_a_ - 1.0);
  }

  std::string name() const override { return "mqar"; }
  int64_t vocab_size() const override { return vocab_size_; }
  int64_t example_length() const override { return length_; }
  int64_t examples(Split split) const override { return split == Split::Train ? train_examples_ : val_examples_; }

  void generate(Split split, int64_t index, int64_t* inputs, int64_t* targets) const override {
    Rng rng({seed_, 0x6d716172ull /* "mqar" */, static_cast<uint64_t>(split), static_cast<uint64_t>(index)});
    const int64_t half = vocab_size_ / 2;
    const std::vector<int64_t> keys = distinct(rng, 1, half);
    const std::vector<int64_t> values = distinct(rng, half, vocab_size_);
    const int64_t context = 2 * pairs_ * passes_;

    std::fill(inputs, inputs + length_, 0);
    std::fill(targets, targets + length_, kIgnoreTarget);
    for (int64_t pass = 0; pass < passes_; ++pass) {
      for (int64_t i = 0; i < pairs_; ++i) {
        inputs[2 * (pass * pairs_ + i)] = keys[static_cast<size_t>(i)];
        inputs[2 * (pass * pairs_ + i) + 1] = values[static_cast<size_t>(i)];
      }
    }
    std::vector<double> weights = gap_weights_;
    for (int64_t i = 0; i < pairs_; ++i) {
      const int64_t query = context + 2 * draw_without_replacement(rng, weights);
      inputs[query] = keys[static_cast<size_t>(i)];
      targets[query] = values[static_cast<size_t>(i)];
    }
    if (random_non_queries_) {
      for (int64_t t = context; t < length_; ++t)
        if (inputs[t] == 0) inputs[t] = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocab_size_)));
    }
  }

 private:
  // pairs_ distinct ids from [low, high), in random order (partial Fisher-Yates).
  std::vector<int64_t> distinct(Rng& rng, int64_t low, int64_t high) const {
    std::vector<int64_t> pool(static_cast<size_t>(high - low));
    std::iota(pool.begin(), pool.end(), low);
    for (int64_t i = 0; i < pairs_; ++i) {
      const auto j = static_cast<size_t>(i) + rng.below(pool.size() - static_cast<size_t>(i));
      std::swap(pool[static_cast<size_t>(i)], pool[j]);
    }
    pool.resize(static_cast<size_t>(pairs_));
    return pool;
  }

  // One index drawn with probability ∝ weights, then removed (numpy's sequential scheme).
  static int64_t draw_without_replacement(Rng& rng, std::vector<double>& weights) {
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    double remaining = rng.uniform() * total;
    size_t chosen = 0;
    for (size_t g = 0; g < weights.size(); ++g) {
      if (weights[g] == 0.0) continue;
      chosen = g;
      remaining -= weights[g];
      if (remaining < 0.0) break;
    }
    weights[chosen] = 0.0;
    return static_cast<int64_t>(chosen);
  }

  uint64_t seed_;
  int64_t vocab_size_, length_, pairs_, passes_;
  double power_a_;
  bool random_non_queries_;
  int64_t train_examples_, val_examples_;
  std::vector<double> gap_weights_;
};

}  // namespace

std::unique_ptr<ProbeTask> make_mqar(uint64_t seed, Options& options) { return std::make_unique<Mqar>(seed, options); }

}  // namespace mixlab::data
