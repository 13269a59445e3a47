#include <doctest/doctest.h>

#include <algorithm>

#include "data/dataset.hpp"
#include "data/sentencepiece_tokenizer.hpp"
#include "data/tokenizer.hpp"
#include "test_data_helpers.hpp"

using namespace mixlab::data;

namespace {

const std::string kMixedText = "Hello, world!\nÀ bientôt — ça va?\n\n  two  spaces\tand a tab\n12345";

}  // namespace

TEST_CASE("data: byte tokenizer round-trips any bytes") {
  const auto tokenizer = make_byte_tokenizer();
  CHECK(tokenizer->kind() == "byte");
  CHECK(tokenizer->vocab_size() == 256);
  const auto ids = tokenizer->encode(kMixedText);
  CHECK(ids.size() == kMixedText.size());
  CHECK(tokenizer->decode(ids) == kMixedText);
  CHECK_THROWS_AS(tokenizer->decode({300}), DataError);
}

TEST_CASE("data: id tokenizer reads and writes decimal ids") {
  const auto tokenizer = make_id_tokenizer(100);
  CHECK(tokenizer->id() == "ids:100");
  CHECK(tokenizer->encode(" 3 14  99\n0") == std::vector<int32_t>{3, 14, 99, 0});
  CHECK(tokenizer->decode({3, 14, 99}) == "3 14 99");
  CHECK_THROWS_AS(tokenizer->encode("100"), DataError);
  CHECK_THROWS_AS(tokenizer->encode("7x"), DataError);
}

TEST_CASE("data: sentencepiece trains, round-trips and is cached") {
  testing::ScratchDir scratch;
  const DataSpec data{"builtin:grammar", 0.1, 3, {{"sentences", 1500}}};
  const TokenizerSpec tok{"sentencepiece", "bpe", 320};

  const auto first = Dataset::open(data, tok, scratch.path());
  CHECK_FALSE(first->loaded_from_cache());
  const Tokenizer& tokenizer = first->tokenizer();
  CHECK(tokenizer.kind() == "sentencepiece");
  CHECK(tokenizer.id().rfind("sentencepiece:bpe:", 0) == 0);
  CHECK(tokenizer.vocab_size() <= 320);
  CHECK(tokenizer.decode(tokenizer.encode(kMixedText)) == kMixedText);  // byte fallback covers unseen characters
  const std::string sentence = "The old king saw her.\nDid they see us?";
  CHECK(tokenizer.encode(sentence).size() < sentence.size());  // it learned merges
  CHECK(first->val_bytes_per_token() > 1.0);

  const auto model = first->cache_path() / "tokenizer.model";
  const auto trained_at = std::filesystem::last_write_time(model);
  const auto second = Dataset::open(data, tok, scratch.path());
  CHECK(second->loaded_from_cache());
  CHECK(std::filesystem::last_write_time(model) == trained_at);
  CHECK(second->tokenizer().id() == tokenizer.id());
  CHECK(second->train_tokens() == first->train_tokens());

  // A unigram model is another cache entry.
  const auto unigram = Dataset::open(data, {"sentencepiece", "unigram", 320}, scratch.path());
  CHECK(unigram->cache_path() != first->cache_path());
  CHECK(unigram->tokenizer().id().rfind("sentencepiece:unigram:", 0) == 0);
  CHECK(unigram->tokenizer().decode(unigram->tokenizer().encode(sentence)) == sentence);
}

TEST_CASE("data: bad tokenizer specs are rejected") {
  testing::ScratchDir scratch;
  const DataSpec data{"builtin:grammar", 0.1, 0, {{"sentences", 100}}};
  CHECK_THROWS_WITH_AS(Dataset::open(data, {"sentencepeice", "bpe", 512}, scratch.path()),
                       doctest::Contains("did you mean 'sentencepiece'"), DataError);
  CHECK_THROWS_WITH_AS(Dataset::open(data, {"sentencepiece", "bpe", 0}, scratch.path()),
                       doctest::Contains("tokenizer.vocab_size"), DataError);
  CHECK_THROWS_WITH_AS(Dataset::open(data, {"sentencepiece", "wordpiece", 512}, scratch.path()),
                       doctest::Contains("model_type"), DataError);
  CHECK_THROWS_AS(Dataset::open(data, {"byte", "bpe", 512}, scratch.path()), DataError);
}

TEST_CASE("data: tokenizer.model_file is used as given, never retrained; the model file's fields are read") {
  testing::ScratchDir scratch;
  const DataSpec data{"builtin:grammar", 0.1, 3, {{"sentences", 1500}}};
  const auto trained = Dataset::open(data, {"sentencepiece", "unigram", 320}, scratch.path());
  const auto file = trained->cache_path() / "tokenizer.model";
  const auto& sp = dynamic_cast<const SentencePieceTokenizer&>(trained->tokenizer());
  const SentencePieceModel& m = sp.model();
  CHECK(m.model_type == "unigram");
  CHECK(std::ssize(m.pieces) == sp.vocab_size());
  CHECK(m.pieces.at(0).text == "<unk>");
  CHECK(m.pieces.at(0).type == SentencePieceModel::PieceType::Unknown);
  CHECK(std::count_if(m.pieces.begin(), m.pieces.end(), [](const auto& p) {
          return p.type == SentencePieceModel::PieceType::Byte;
        }) == 256);
  CHECK((m.byte_fallback && !m.add_dummy_prefix && !m.remove_extra_whitespaces && m.escape_whitespaces));
  CHECK((m.normalizer == "identity" && !m.has_charsmap && !m.treat_whitespace_as_suffix));
  CHECK((m.unk_id == 0 && m.bos_id == -1 && m.eos_id == -1 && m.pad_id == -1));

  // Named by model_file: the same tokenizer for another corpus (its type is the file's, not model_type's).
  const DataSpec other{"builtin:grammar", 0.1, 4, {{"sentences", 300}}};
  const auto given = Dataset::open(other, {"sentencepiece", "bpe", sp.vocab_size(), file.string()}, scratch.path());
  CHECK(given->tokenizer().id() == sp.id());
  CHECK(given->tokenizer().encode(kMixedText) == sp.encode(kMixedText));
  const std::string says =
      "tokenizer.model_file " + file.string() + " has " + std::to_string(sp.vocab_size()) + " pieces; tokenizer.vocab_size says";
  CHECK_THROWS_WITH_AS(Dataset::open(other, {"sentencepiece", "bpe", sp.vocab_size() + 1, file.string()}, scratch.path()),
                       doctest::Contains(says.c_str()), DataError);
  CHECK_THROWS_WITH_AS(Dataset::open(other, {"sentencepiece", "bpe", 300, (scratch.path() / "none.model").string()},
                                     scratch.path()),
                       doctest::Contains("none.model: no such file"), DataError);

  // Bytes that are not a model proto.
  CHECK_THROWS_WITH_AS(parse_sentencepiece_model("\x0a\x05" "ab", "x.model"),
                       doctest::Contains("x.model: not a SentencePiece model (a record running past the end"), DataError);
  CHECK_THROWS_WITH_AS(parse_sentencepiece_model("", "y.model"),
                       doctest::Contains("y.model: not a SentencePiece model (no pieces)"), DataError);
}
