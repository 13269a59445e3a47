// Tokenizers: text <-> token ids. Three kinds:
//   byte           UTF-8 bytes, vocab 256, id "byte"
//   sentencepiece  BPE or unigram trained on the train split (sentencepiece_tokenizer.hpp)
//   ids            probe tasks, whose token ids ARE the vocabulary; text is the ids in
//                  decimal separated by spaces, id "ids:<V>"
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixlab::data {

// One token and the bytes [begin, end) of the encoded text it covers.
struct TokenSpan {
  int32_t id = 0;
  size_t begin = 0;
  size_t end = 0;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "byte" | "sentencepiece" | "ids"
  virtual std::string id() const = 0;    // stable identity, stored in every token shard
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<TokenSpan> encode_spans(const std::string& text) const = 0;
  virtual std::vector<int32_t> encode(const std::string& text) const;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
};

struct TokenizerSpec {
  std::string kind = "byte";       // "byte" (vocab 256) | "sentencepiece"
  std::string model_type = "bpe";  // sentencepiece: "bpe" | "unigram"
  int64_t vocab_size = 0;          // sentencepiece: required (e.g. 512..8192)
  std::string model_file;          // sentencepiece: a model to load instead of training one
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();
std::unique_ptr<Tokenizer> make_id_tokenizer(int64_t vocab_size);

}  // namespace mixlab::data
