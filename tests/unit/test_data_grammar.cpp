#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "data/dataset.hpp"
#include "data/grammar.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

namespace {

std::set<std::string> lines(const std::string& text) {
  std::set<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.insert(line);
  return result;
}

}  // namespace

TEST_CASE("data: the grammar corpus is a function of the seed") {
  const GrammarCorpus a = generate_grammar(7, 400, 0.25);
  const GrammarCorpus b = generate_grammar(7, 400, 0.25);
  const GrammarCorpus c = generate_grammar(8, 400, 0.25);
  CHECK(a.train.text == b.train.text);
  CHECK(a.val.text == b.val.text);
  CHECK(a.train.byte_classes == b.train.byte_classes);
  CHECK(a.train.text != c.train.text);
  CHECK(std::count(a.val.text.begin(), a.val.text.end(), '\n') == 100);
  CHECK(std::count(a.train.text.begin(), a.train.text.end(), '\n') == 300);
}

TEST_CASE("data: grammar train and validation share no sentence") {
  const GrammarCorpus corpus = generate_grammar(1, 4000, 0.2);
  const auto train = lines(corpus.train.text);
  for (const auto& sentence : lines(corpus.val.text)) CHECK_MESSAGE(train.count(sentence) == 0, sentence);
}

TEST_CASE("data: every grammar byte has a class") {
  const GrammarCorpus corpus = generate_grammar(2, 300, 0.1);
  const auto& names = grammar_class_names();
  REQUIRE(corpus.train.byte_classes.size() == corpus.train.text.size());
  std::set<uint8_t> seen(corpus.train.byte_classes.begin(), corpus.train.byte_classes.end());
  CHECK(seen.size() == names.size());  // 300 sentences use every class
  CHECK(*seen.rbegin() < names.size());
  for (size_t i = 0; i < corpus.train.text.size(); ++i) {
    const std::string& name = names[corpus.train.byte_classes[i]];
    const char c = corpus.train.text[i];
    if (c == ' ' || c == '\n') CHECK(name == "space");
    if (c == '.' || c == '?' || c == ',' || c == '!') CHECK(name == "punctuation");
  }
}

TEST_CASE("data: grammar batches carry the class of every target token") {
  testing::ScratchDir scratch;
  const auto dataset = Dataset::open({"builtin:grammar", 0.1, 5, {{"sentences", 500}}}, {}, scratch.path());
  const auto names = dataset->class_names();
  REQUIRE(names == grammar_class_names());
  const Batch batch = dataset->next_train(4, 32);
  REQUIRE(batch.classes.defined());
  CHECK(batch.classes.sizes() == batch.targets.sizes());
  CHECK(batch.classes.min().item<int64_t>() >= 0);
  CHECK(batch.classes.max().item<int64_t>() < static_cast<int64_t>(names.size()));
  // Byte tokens: spaces and newlines are the "space" class.
  const auto space = batch.targets.eq(' ').logical_or(batch.targets.eq('\n'));
  CHECK(batch.classes.masked_select(space).eq(0).all().item<bool>());
  for (const Batch& val : dataset->validation(4, 32, 2)) CHECK(val.classes.defined());
  CHECK(dataset->describe().find("17 token classes") != std::string::npos);
}
