#include <doctest/doctest.h>

#include <map>
#include <set>

#include "data/dataset.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

TEST_CASE("data: mqar follows zoology's structure") {
  testing::ScratchDir scratch;
  const int64_t vocab = 256, length = 64, pairs = 8;
  const DataSpec spec{"builtin:mqar", 0.1, 11,
                      {{"vocab_size", vocab}, {"input_seq_len", length}, {"num_kv_pairs", pairs},
                       {"train_examples", 64}, {"val_examples", 32}, {"random_non_queries", 0}}};
  const auto dataset = Dataset::open(spec, {}, scratch.path());
  CHECK(dataset->is_probe_task());
  CHECK(dataset->tokenizer().id() == "ids:256");
  CHECK(dataset->tokenizer().vocab_size() == vocab);
  CHECK(dataset->class_names().empty());

  const Batch batch = dataset->next_train(16, length);
  CHECK_FALSE(batch.classes.defined());
  for (int64_t row = 0; row < 16; ++row) {
    const auto inputs = batch.inputs[row];
    const auto targets = batch.targets[row];
    std::map<int64_t, int64_t> value_of;
    for (int64_t i = 0; i < pairs; ++i) {
      const int64_t key = inputs[2 * i].item<int64_t>(), value = inputs[2 * i + 1].item<int64_t>();
      CHECK(key >= 1);
      CHECK(key < vocab / 2);
      CHECK(value >= vocab / 2);
      CHECK(value < vocab);
      CHECK(value_of.count(key) == 0);  // keys without replacement
      value_of[key] = value;
      CHECK(targets[2 * i].item<int64_t>() == -100);
      CHECK(targets[2 * i + 1].item<int64_t>() == -100);
    }
    int64_t labelled = 0;
    std::set<int64_t> queried;
    for (int64_t t = 2 * pairs; t < length; ++t) {
      const int64_t target = targets[t].item<int64_t>();
      if (target == -100) {
        CHECK(inputs[t].item<int64_t>() == 0);  // zero fillers without random_non_queries
        continue;
      }
      ++labelled;
      CHECK((t - 2 * pairs) % 2 == 0);  // queries at even offsets
      const int64_t key = inputs[t].item<int64_t>();
      REQUIRE(value_of.count(key) == 1);
      CHECK(target == value_of[key]);  // the label is the stored value
      queried.insert(key);
    }
    CHECK(labelled == pairs);
    CHECK(queried.size() == static_cast<size_t>(pairs));  // every key is queried once
  }
  CHECK(dataset->unigram_cross_entropy() > 0.0);
}

TEST_CASE("data: mqar with random fillers keeps labels only at queries") {
  testing::ScratchDir scratch;
  const auto dataset = Dataset::open(
      {"builtin:mqar", 0.1, 0, {{"vocab_size", 128}, {"input_seq_len", 64}, {"train_examples", 10}}}, {},
      scratch.path());
  const Batch batch = dataset->next_train(10, 64);
  CHECK(batch.targets.ne(-100).sum(1).eq(4).all().item<bool>());  // num_kv_pairs defaults to 4
  CHECK(batch.inputs.ge(0).logical_and(batch.inputs.lt(128)).all().item<bool>());
  const auto val = dataset->validation(1000, 64, 0);
  REQUIRE(val.size() == 3);  // 3000 val examples by default
  CHECK(val[2].inputs.size(0) == 1000);
  CHECK_THROWS_WITH_AS(dataset->next_train(2, 65), doctest::Contains("input_seq_len"), DataError);
  CHECK_THROWS_AS(dataset->validation(2, 32, 1), DataError);
}

TEST_CASE("data: mqar rejects impossible parameters") {
  testing::ScratchDir scratch;
  auto open = [&](std::map<std::string, double> options) {
    return Dataset::open({"builtin:mqar", 0.1, 0, std::move(options)}, {}, scratch.path());
  };
  CHECK_THROWS_WITH_AS(open({{"input_seq_len", 63}}), doctest::Contains("even"), DataError);
  CHECK_THROWS_WITH_AS(open({{"num_kv_pairs", 20}}), doctest::Contains("num_kv_pairs"), DataError);
  CHECK_THROWS_WITH_AS(open({{"vocab_size", 32}}), doctest::Contains("must exceed input_seq_len"), DataError);
  CHECK_THROWS_WITH_AS(open({{"num_kv_pair", 2}}), doctest::Contains("did you mean 'num_kv_pairs'"), DataError);
  CHECK_THROWS_WITH_AS(open({{"power_a", 0}}), doctest::Contains("power_a"), DataError);
  CHECK_THROWS_AS(Dataset::open({"builtin:mqar", 0.1, 0, {}}, {"sentencepiece", "bpe", 512}, scratch.path()),
                  DataError);
}

TEST_CASE("data: selective copying targets the copied tokens in order") {
  testing::ScratchDir scratch;
  const int64_t vocab = 16, length = 64, copies = 8;
  const auto dataset = Dataset::open(
      {"builtin:copy", 0.1, 3,
       {{"vocab_size", vocab}, {"input_seq_len", length}, {"num_tokens_to_copy", copies}, {"train_examples", 20}}},
      {}, scratch.path());
  CHECK(dataset->tokenizer().id() == "ids:16");
  const Batch batch = dataset->next_train(20, length);
  const int64_t blank = vocab - 2, copy = vocab - 1;
  for (int64_t row = 0; row < 20; ++row) {
    const auto inputs = batch.inputs[row];
    const auto targets = batch.targets[row];
    const int64_t copy_at = length - copies - 1;
    CHECK(inputs[copy_at].item<int64_t>() == copy);
    std::vector<int64_t> tokens;
    for (int64_t t = 0; t < copy_at; ++t) {
      const int64_t token = inputs[t].item<int64_t>();
      CHECK(targets[t].item<int64_t>() == -100);
      if (token == blank) continue;
      CHECK(token < blank);
      tokens.push_back(token);
    }
    REQUIRE(tokens.size() == static_cast<size_t>(copies));
    CHECK(targets[copy_at].item<int64_t>() == -100);
    for (int64_t i = 0; i < copies; ++i) {
      CHECK(inputs[copy_at + 1 + i].item<int64_t>() == blank);
      CHECK(targets[copy_at + 1 + i].item<int64_t>() == tokens[static_cast<size_t>(i)]);
    }
  }
  CHECK_THROWS_AS(Dataset::open({"builtin:copy", 0.1, 0, {{"input_seq_len", 33}, {"num_tokens_to_copy", 16}}}, {},
                                scratch.path()),
                  DataError);
}

TEST_CASE("data: probe epochs visit every train example once") {
  testing::ScratchDir scratch;
  const auto dataset = Dataset::open(
      {"builtin:copy", 0.1, 9, {{"input_seq_len", 40}, {"num_tokens_to_copy", 4}, {"train_examples", 12}}}, {},
      scratch.path());
  const Batch epoch = dataset->next_train(12, 40);
  std::set<std::vector<int64_t>> distinct;
  for (int64_t row = 0; row < 12; ++row) {
    const auto r = epoch.inputs[row].contiguous();
    distinct.insert(std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + 40));
  }
  CHECK(distinct.size() == 12);
}
