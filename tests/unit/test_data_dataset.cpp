#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "data/dataset.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

namespace {

// ~6 KB of distinct numbered lines.
std::string numbered_lines(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += "line " + std::to_string(i) + " of the test corpus\n";
  return text;
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.inputs.equal(b.inputs) && a.targets.equal(b.targets);
}

}  // namespace

TEST_CASE("data: a text file splits into train and the last fraction as validation") {
  testing::ScratchDir scratch;
  const std::string text = numbered_lines(200);
  const auto file = scratch.write("corpus.txt", text);
  const auto dataset = Dataset::open({file.string(), 0.25, 0, {}}, {}, scratch.path() / "cache");
  CHECK(dataset->train_tokens() + dataset->val_tokens() == static_cast<int64_t>(text.size()));
  CHECK(std::abs(static_cast<double>(dataset->val_tokens()) / static_cast<double>(text.size()) - 0.25) < 0.01);
  CHECK(dataset->val_bytes_per_token() == 1.0);
  CHECK_FALSE(dataset->is_probe_task());
  CHECK(dataset->class_names().empty());

  // Validation windows are contiguous from the start of the val split, with shifted targets.
  const auto batches = dataset->validation(3, 16, 2);
  REQUIRE(batches.size() == 2);
  const auto& first = batches[0];
  CHECK(first.inputs.sizes() == std::vector<int64_t>{3, 16});
  CHECK_FALSE(first.classes.defined());
  CHECK(first.inputs[0].slice(0, 1).equal(first.targets[0].slice(0, 0, 15)));
  CHECK(first.inputs[1][0].item<int64_t>() == first.targets[0][15].item<int64_t>());
  const std::string val_start = dataset->tokenizer().decode(std::vector<int32_t>(
      first.inputs[0].data_ptr<int64_t>(), first.inputs[0].data_ptr<int64_t>() + 16));
  CHECK(text.find(val_start) == text.size() - static_cast<size_t>(dataset->val_tokens()));
  CHECK(val_start.rfind("line ", 0) == 0);  // the split falls on a line start

  const size_t all = dataset->validation(64, 16, 0).size();
  CHECK(all == static_cast<size_t>(((dataset->val_tokens() - 1) / 16 + 63) / 64));

  // A unigram model of bytes beats the uniform 256-way guess.
  CHECK(dataset->unigram_cross_entropy() < std::log(256.0));
  CHECK(dataset->unigram_cross_entropy() > 0.0);
}

TEST_CASE("data: training batches replay exactly from a saved position") {
  testing::ScratchDir scratch;
  const auto file = scratch.write("corpus.txt", numbered_lines(200));
  auto open = [&](uint64_t seed) { return Dataset::open({file.string(), 0.1, seed, {}}, {}, scratch.path()); };
  auto run = open(1);
  run->next_train(4, 32);
  const uint64_t saved = run->position();
  CHECK(saved == 4);
  const Batch a = run->next_train(4, 32);
  const Batch b = run->next_train(4, 32);

  auto resumed = open(1);
  resumed->set_position(saved);
  CHECK(same_batch(resumed->next_train(4, 32), a));
  CHECK(same_batch(resumed->next_train(4, 32), b));
  // The position counts rows, so a different batch size continues the same stream.
  resumed->set_position(saved);
  const Batch wide = resumed->next_train(8, 32);
  CHECK(wide.inputs.slice(0, 0, 4).equal(a.inputs));
  CHECK(wide.inputs.slice(0, 4, 8).equal(b.inputs));

  auto other = open(2);
  other->set_position(saved);
  CHECK_FALSE(same_batch(other->next_train(4, 32), a));
  CHECK(a.inputs.slice(1, 1).equal(a.targets.slice(1, 0, 31)));  // targets are inputs shifted by one
}

TEST_CASE("data: probe batches replay exactly from a saved position") {
  testing::ScratchDir scratch;
  const DataSpec spec{"builtin:mqar", 0.1, 4, {{"vocab_size", 128}, {"train_examples", 10}}};
  auto run = Dataset::open(spec, {}, scratch.path());
  run->next_train(7, 64);
  const Batch a = run->next_train(7, 64);  // crosses into the second epoch
  auto resumed = Dataset::open(spec, {}, scratch.path());
  resumed->set_position(7);
  CHECK(same_batch(resumed->next_train(7, 64), a));
}

TEST_CASE("data: too small corpora fail with the sizes") {
  testing::ScratchDir scratch;
  const auto file = scratch.write("tiny.txt", "abcdefghij\nklmnopqrst\n");
  const auto dataset = Dataset::open({file.string(), 0.5, 0, {}}, {}, scratch.path());
  CHECK(dataset->train_tokens() == 11);
  CHECK_NOTHROW(dataset->next_train(2, 10));
  CHECK_THROWS_WITH_AS(dataset->next_train(2, 11), doctest::Contains("has 11 tokens, fewer than the seq_len + 1 = 12"),
                       DataError);
  CHECK_THROWS_WITH_AS(dataset->validation(1, 64, 1), doctest::Contains("validation split has 11 tokens"), DataError);
  CHECK_THROWS_AS(dataset->next_train(0, 4), DataError);
}

TEST_CASE("data: bad sources are reported clearly") {
  testing::ScratchDir scratch;
  auto open = [&](const std::string& source, std::map<std::string, double> options = {}) {
    return Dataset::open({source, 0.1, 0, std::move(options)}, {}, scratch.path() / "cache");
  };
  CHECK_THROWS_WITH_AS(open((scratch.path() / "nope.txt").string()), doctest::Contains("no file or folder"), DataError);
  CHECK_THROWS_WITH_AS(open("builtin:mqr"), doctest::Contains("did you mean 'builtin:mqar'"), DataError);
  CHECK_THROWS_WITH_AS(open(""), doctest::Contains("data.source is empty"), DataError);
  CHECK_THROWS_WITH_AS(open(scratch.write("empty.txt", "\n\n").string()), doctest::Contains("empty"), DataError);
  std::filesystem::create_directories(scratch.path() / "no-text");
  CHECK_THROWS_WITH_AS(open((scratch.path() / "no-text").string()), doctest::Contains("no .txt files"), DataError);
  CHECK_THROWS_WITH_AS(open("builtin:grammar", {{"sentence", 10}}), doctest::Contains("did you mean 'sentences'"),
                       DataError);
  CHECK_THROWS_WITH_AS(open("builtin:grammar", {{"sentences", 1.5}}), doctest::Contains("an integer"), DataError);
  CHECK_THROWS_WITH_AS(open(scratch.write("one.txt", "x\n").string(), {{"sentences", 10}}),
                       doctest::Contains("takes no options"), DataError);
  CHECK_THROWS_WITH_AS(Dataset::open({"builtin:grammar", 1.0, 0, {}}, {}, scratch.path()),
                       doctest::Contains("val_fraction"), DataError);
}

TEST_CASE("data: a folder of .txt files is one corpus, cached by content") {
  testing::ScratchDir scratch;
  scratch.write("texts/b.txt", numbered_lines(50));
  scratch.write("texts/sub/a.txt", "no trailing newline");
  scratch.write("texts/ignored.md", "not text");
  const auto cache = scratch.path() / "cache";
  const DataSpec spec{(scratch.path() / "texts").string(), 0.1, 0, {}};
  const auto first = Dataset::open(spec, {}, cache);
  CHECK(first->train_tokens() + first->val_tokens() ==
        static_cast<int64_t>(numbered_lines(50).size() + std::string("no trailing newline\n").size()));
  CHECK(Dataset::open(spec, {}, cache)->loaded_from_cache());
  scratch.write("texts/b.txt", numbered_lines(51));
  const auto changed = Dataset::open(spec, {}, cache);
  CHECK_FALSE(changed->loaded_from_cache());
  CHECK(changed->cache_path() != first->cache_path());
}

TEST_CASE("data: a corrupt cache is rebuilt") {
  testing::ScratchDir scratch;
  const DataSpec spec{"builtin:grammar", 0.1, 0, {{"sentences", 200}}};
  const auto first = Dataset::open(spec, {}, scratch.path());
  const auto tokens = first->train_tokens();
  const auto path = first->cache_path();
  scratch.write(std::filesystem::relative(path / "train.bin", scratch.path()).string(), "garbage");
  const auto rebuilt = Dataset::open(spec, {}, scratch.path());
  CHECK_FALSE(rebuilt->loaded_from_cache());
  CHECK(rebuilt->train_tokens() == tokens);
  CHECK(Dataset::open(spec, {}, scratch.path())->loaded_from_cache());
}
