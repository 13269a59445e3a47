// SentencePiece (BPE or unigram) trained in-process on the train split.
// Training settings (why): byte_fallback, so any text round-trips; identity
// normalisation, no dummy prefix and no whitespace folding, so decode(encode(x))
// == x; split_digits (llama2.c); one thread and a fixed seed, so the model is a
// pure function of the text and the spec. Text is encoded line by line (encoding megabytes
// as one string is slow) and each '\n' is the byte piece <0x0A>.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/sentencepiece_model.hpp"
#include "data/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mixlab::data {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Returns the serialized model trained on the lines of `text`.
  static std::string train(const std::string& text, const TokenizerSpec& spec);
  // Loads a model file (trained here, or any with byte pieces, e.g. from `host import`).
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& model_file);
  ~SentencePieceTokenizer() override;

  std::string kind() const override { return "sentencepiece"; }
  std::string id() const override { return id_; }
  int64_t vocab_size() const override;
  std::vector<TokenSpan> encode_spans(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  // The model file's bytes, and what they hold (pieces, algorithm, normaliser).
  std::string serialized_model() const;
  const SentencePieceModel& model() const { return model_; }

 private:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor, SentencePieceModel model,
                         std::string id);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  SentencePieceModel model_;
  std::string id_;
  int32_t newline_id_ = 0;
};

}  // namespace mixlab::data
