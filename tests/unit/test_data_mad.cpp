// The MAD task generators (host/data/{recall,fuzzy_recall,memorization,compression}.cpp)
// against naive reference readers: each reads an example the way its definition says,
// derives the answers from the input alone and checks the generator's targets against
// them; then the difficulty knobs are checked to change what they claim.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <vector>

#include "data/dataset.hpp"
#include "data/options.hpp"
#include "data/probe_dataset.hpp"
#include "data/probe_task.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

namespace {

struct Example {
  std::vector<int64_t> inputs, targets;
};

using Factory = std::unique_ptr<ProbeTask> (*)(uint64_t, Options&);

std::unique_ptr<ProbeTask> make(Factory factory, uint64_t seed, std::map<std::string, double> given) {
  Options options("test", std::move(given));
  auto task = factory(seed, options);
  options.finish();
  return task;
}

Example example(const ProbeTask& task, Split split, int64_t index) {
  Example e{std::vector<int64_t>(static_cast<size_t>(task.example_length())),
            std::vector<int64_t>(static_cast<size_t>(task.example_length()))};
  task.generate(split, index, e.inputs.data(), e.targets.data());
  return e;
}

// Reference reader of (noisy) in-context recall: slots of two tokens; a slot whose key
// was seen before is a query whose answer is the value stored at its first appearance.
struct RecallReading {
  int64_t noise_slots = 0, queries = 0;
};
RecallReading read_recall(const Example& e, int64_t vocab, int64_t noise_vocab, Split split) {
  const int64_t keys = (vocab - noise_vocab) / 2, length = std::ssize(e.inputs);
  RecallReading r;
  std::map<int64_t, int64_t> stored;
  for (int64_t t = 0; t < length; t += 2) {
    const int64_t a = e.inputs[static_cast<size_t>(t)], b = e.inputs[static_cast<size_t>(t + 1)];
    if (a >= 2 * keys) {  // noise slot: both tokens noise, nothing scored in val
      ++r.noise_slots;
      CHECK(b >= 2 * keys);
      CHECK(b < vocab);
      if (split == Split::Val) CHECK(e.targets[static_cast<size_t>(t)] == kIgnoreTarget);
      continue;
    }
    REQUIRE(a < keys);
    REQUIRE(b >= keys);
    REQUIRE(b < 2 * keys);
    const bool query = stored.count(a) != 0;
    if (query) CHECK(stored[a] == b);  // the answer is determined by the earlier pair
    else stored[a] = b;
    r.queries += query;
    if (split == Split::Val) CHECK(e.targets[static_cast<size_t>(t)] == (query ? b : kIgnoreTarget));
    if (split == Split::Val) CHECK(e.targets[static_cast<size_t>(t + 1)] == kIgnoreTarget);
  }
  if (split == Split::Train)
    for (int64_t t = 0; t < length; ++t)
      CHECK(e.targets[static_cast<size_t>(t)] ==
            (t + 1 < length ? e.inputs[static_cast<size_t>(t + 1)] : kIgnoreTarget));
  // The last slot always asks for a key shown before.
  CHECK(stored.count(e.inputs[static_cast<size_t>(length - 2)]) == 1);
  return r;
}

}  // namespace

TEST_CASE("data: in-context recall answers are determined by the input") {
  for (Split split : {Split::Train, Split::Val}) {
    const auto task = make(make_recall, 5, {{"vocab_size", 16}, {"input_seq_len", 64}});
    int64_t queries = 0;
    for (int64_t i = 0; i < 50; ++i) {
      const auto r = read_recall(example(*task, split, i), 16, 0, split);
      CHECK(r.noise_slots == 0);
      queries += r.queries;
    }
    CHECK(queries > 50 * 10);  // 8 keys in 32 slots: most slots repeat a key
  }
  // Deterministic from (seed, split, index), and the seed matters.
  const auto a = make(make_recall, 5, {}), b = make(make_recall, 5, {}), c = make(make_recall, 6, {});
  CHECK(example(*a, Split::Val, 3).inputs == example(*b, Split::Val, 3).inputs);
  CHECK(example(*a, Split::Val, 3).inputs != example(*c, Split::Val, 3).inputs);
  CHECK(example(*a, Split::Val, 3).inputs != example(*a, Split::Train, 3).inputs);
}

TEST_CASE("data: noisy recall's knobs set the noise fraction, vocabulary and length") {
  for (double frac : {0.2, 0.6}) {
    const int64_t length = 128, vocab = 48, noise = 16;
    const auto task = make(make_noisy_recall, 1,
                           {{"vocab_size", vocab}, {"input_seq_len", length}, {"frac_noise", frac}});
    CHECK(task->example_length() == length);
    CHECK(task->vocab_size() == vocab);
    int64_t noise_slots = 0;
    const int64_t examples = 200;
    for (int64_t i = 0; i < examples; ++i) noise_slots += read_recall(example(*task, Split::Val, i), vocab, noise, Split::Val).noise_slots;
    // Of the 64 slots, the last and one other are never noise: expected share frac * 62 / 64.
    const double share = static_cast<double>(noise_slots) / static_cast<double>(examples * length / 2);
    CHECK(share == doctest::Approx(frac * 62.0 / 64.0).epsilon(0.05));
  }
  CHECK_THROWS_WITH_AS(make(make_recall, 0, {{"frac_noise", 0.2}}), doctest::Contains("noise_vocab_size"), DataError);
  CHECK_THROWS_WITH_AS(make(make_recall, 0, {{"input_seq_len", 63}}), doctest::Contains("even"), DataError);
}

TEST_CASE("data: fuzzy recall's motifs parse and answer from the input") {
  const int64_t vocab = 32, length = 128, kmax = 3, vmax = 3;
  const int64_t half = (vocab - 1) / 2, pad = vocab - 1;
  for (Split split : {Split::Train, Split::Val}) {
    const auto task = make(make_fuzzy_recall, 2, {{"vocab_size", vocab}, {"input_seq_len", length}});
    std::set<size_t> key_sizes;
    for (int64_t i = 0; i < 40; ++i) {
      const Example e = example(*task, split, i);
      // The full T + 1 tokens: the last target is always the last value token.
      std::vector<int64_t> seq = e.inputs;
      seq.push_back(e.targets.back());
      REQUIRE(seq.back() != kIgnoreTarget);
      // Reference: split into maximal runs by range (pad, key, value); key run -> value run.
      std::map<std::vector<int64_t>, std::vector<int64_t>> stored;
      std::vector<bool> recalled(seq.size(), false);
      size_t t = 0;
      while (t < seq.size() && seq[t] == pad) ++t;  // left padding
      int64_t queries = 0;
      while (t < seq.size()) {
        std::vector<int64_t> key, value;
        while (t < seq.size() && seq[t] < half) key.push_back(seq[t++]);
        const size_t value_start = t;
        while (t < seq.size() && seq[t] >= half && seq[t] < 2 * half) value.push_back(seq[t++]);
        REQUIRE(!key.empty());
        REQUIRE(!value.empty());
        CHECK(key.size() <= static_cast<size_t>(kmax));
        CHECK(value.size() <= static_cast<size_t>(vmax));
        CHECK(std::set<int64_t>(key.begin(), key.end()).size() == key.size());  // distinct tokens in a motif
        key_sizes.insert(key.size());
        const auto [found, fresh] = stored.try_emplace(key, value);
        if (!fresh) {
          CHECK(found->second == value);  // determined by the earlier pair
          ++queries;
          for (size_t v = value_start; v < t; ++v) recalled[v] = true;
        }
      }
      CHECK(queries >= 1);
      for (size_t u = 0; u < e.targets.size(); ++u) {
        const bool scored = split == Split::Train ? seq[u + 1] != pad : static_cast<bool>(recalled[u + 1]);
        CHECK(e.targets[u] == (scored ? seq[u + 1] : kIgnoreTarget));
      }
    }
    // Train mixes key sizes 1..3; val always prompts with the longest keys (MAD's test setting).
    const std::set<size_t> expected = split == Split::Val ? std::set<size_t>{3} : std::set<size_t>{1, 2, 3};
    CHECK(key_sizes == expected);
  }
  CHECK_THROWS_WITH_AS(make(make_fuzzy_recall, 0, {{"vocab_size", 6}}), doctest::Contains("motif"), DataError);
  CHECK_THROWS_WITH_AS(make(make_fuzzy_recall, 0, {{"input_seq_len", 8}}), doctest::Contains("probe pair"), DataError);
}

TEST_CASE("data: memorization is one fixed map across examples and splits, sized by vocab_size") {
  for (int64_t vocab : {64, 256}) {
    const auto task = make(make_memorization, 9, {{"vocab_size", vocab}, {"input_seq_len", 32}});
    const int64_t keys = (vocab - 1) / 2;
    std::map<int64_t, int64_t> value_of;
    for (Split split : {Split::Train, Split::Val})
      for (int64_t i = 0; i < 100; ++i) {
        const Example e = example(*task, split, i);
        for (size_t t = 0; t < e.inputs.size(); t += 2) {
          CHECK(e.inputs[t + 1] == vocab - 1);  // the insert token
          CHECK(e.targets[t] == kIgnoreTarget);
          const int64_t key = e.inputs[t], value = e.targets[t + 1];
          REQUIRE(key >= 0);
          REQUIRE(key < keys);
          CHECK(value >= keys);
          CHECK(value < vocab - 1);
          const auto [found, fresh] = value_of.try_emplace(key, value);
          CHECK(found->second == value);
        }
      }
    CHECK(std::ssize(value_of) == keys);  // 3200 draws cover every key
    std::set<int64_t> values;
    for (const auto& [key, value] : value_of) values.insert(value);
    CHECK(values.size() == value_of.size());  // distinct values: an injection
  }
  // Another seed, another map.
  const auto a = make(make_memorization, 1, {}), b = make(make_memorization, 2, {});
  CHECK(example(*a, Split::Train, 0).targets != example(*b, Split::Train, 0).targets);
}

TEST_CASE("data: compression reconstructs the input, noise unscored") {
  const int64_t vocab = 32, length = 64;
  const auto task = make(make_compression, 4,
                         {{"vocab_size", vocab}, {"input_seq_len", length}, {"noise_vocab_size", 8}, {"frac_noise", 0.25}});
  int64_t noise = 0;
  for (int64_t i = 0; i < 200; ++i) {
    const Example e = example(*task, Split::Train, i);
    CHECK(e.inputs.back() == vocab - 1);
    for (size_t t = 0; t + 1 < e.inputs.size(); ++t) {
      const bool is_noise = e.inputs[t] >= vocab - 1 - 8;
      CHECK(e.inputs[t] < vocab - 1);
      CHECK(e.targets[t] == (is_noise ? kIgnoreTarget : e.inputs[t]));
      noise += is_noise;
    }
  }
  CHECK(static_cast<double>(noise) / (200.0 * (length - 1)) == doctest::Approx(0.25).epsilon(0.05));
}

TEST_CASE("data: the MAD tasks are data sources with their own id vocabulary") {
  testing::ScratchDir scratch;
  for (const char* source :
       {"builtin:recall", "builtin:noisy_recall", "builtin:fuzzy_recall", "builtin:memorization", "builtin:compression"}) {
    CAPTURE(source);
    CHECK(is_probe_source(source));
    const auto dataset = Dataset::open({source, 0.1, 1, {{"input_seq_len", 32}, {"train_examples", 8}}}, {}, scratch.path());
    CHECK(dataset->is_probe_task());
    const Batch batch = dataset->next_train(4, 32);
    CHECK(batch.inputs.lt(dataset->tokenizer().vocab_size()).all().item<bool>());
    CHECK(batch.targets.ne(kIgnoreTarget).any().item<bool>());
  }
  CHECK_THROWS_WITH_AS(Dataset::open({"builtin:recal", 0.1, 0, {}}, {}, scratch.path()),
                       doctest::Contains("did you mean 'builtin:recall'"), DataError);
}
