#include "data/tokenizer.hpp"

#include <cctype>

#include "data/error.hpp"

namespace mixlab::data {

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  for (const TokenSpan& token : encode_spans(text)) ids.push_back(token.id);
  return ids;
}

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "byte"; }
  std::string id() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }

  std::vector<TokenSpan> encode_spans(const std::string& text) const override {
    std::vector<TokenSpan> tokens(text.size());
    for (size_t i = 0; i < text.size(); ++i) tokens[i] = {static_cast<unsigned char>(text[i]), i, i + 1};
    return tokens;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] > 255)
        throw DataError("byte tokenizer: id " + std::to_string(ids[i]) + " is not a byte");
      text[i] = static_cast<char>(ids[i]);
    }
    return text;
  }
};

class IdTokenizer final : public Tokenizer {
 public:
  explicit IdTokenizer(int64_t vocab_size) : vocab_size_(vocab_size) {}

  std::string kind() const override { return "ids"; }
  std::string id() const override { return "ids:" + std::to_string(vocab_size_); }
  int64_t vocab_size() const override { return vocab_size_; }

  std::vector<TokenSpan> encode_spans(const std::string& text) const override {
    std::vector<TokenSpan> tokens;
    size_t i = 0;
    while (i < text.size()) {
      if (std::isspace(static_cast<unsigned char>(text[i]))) {
        ++i;
        continue;
      }
      const size_t begin = i;
      int64_t value = 0;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && value < vocab_size_)
        value = value * 10 + (text[i++] - '0');
      if (i == begin || value >= vocab_size_ || (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))))
        throw DataError(id() + " tokenizer: expected decimal ids below " + std::to_string(vocab_size_) +
                        " separated by spaces, got '" + text.substr(begin, 20) + "'");
      tokens.push_back({static_cast<int32_t>(value), begin, i});
    }
    return tokens;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (int32_t token : ids) text += (text.empty() ? "" : " ") + std::to_string(token);
    return text;
  }

 private:
  int64_t vocab_size_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> make_id_tokenizer(int64_t vocab_size) { return std::make_unique<IdTokenizer>(vocab_size); }

}  // namespace mixlab::data
