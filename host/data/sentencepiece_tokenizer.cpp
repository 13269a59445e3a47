#include "data/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>
#include <utility>

#include "data/error.hpp"
#include "util/sha256.hpp"

namespace mixlab::data {

namespace {

// Feeds the non-empty lines of a text to the trainer without copying it whole.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& text) : text_(text) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (position_ < text_.size()) {
      size_t end = text_.find('\n', position_);
      if (end == std::string::npos) end = text_.size();
      line_.assign(text_, position_, end - position_);
      position_ = end + 1;
      if (!line_.empty()) return;
    }
    done_ = true;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::string& text_;
  size_t position_ = 0;
  std::string line_;
  bool done_ = false;
};

constexpr int64_t kMinVocab = 260;  // 256 byte pieces, <unk> and a few merges

}  // namespace

std::string SentencePieceTokenizer::train(const std::string& text, const TokenizerSpec& spec) {
  if (spec.model_type != "bpe" && spec.model_type != "unigram")
    throw DataError("tokenizer.model_type: expected \"bpe\" or \"unigram\", got \"" + spec.model_type + "\"");
  if (spec.vocab_size < kMinVocab || spec.vocab_size > 1'000'000)
    throw DataError("tokenizer.vocab_size: expected " + std::to_string(kMinVocab) +
                    ".. for sentencepiece (256 byte-fallback pieces are part of it), got " +
                    std::to_string(spec.vocab_size));
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", spec.model_type},
      {"vocab_size", std::to_string(spec.vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"hard_vocab_limit", "false"},  // a small corpus may not have vocab_size pieces
      {"max_sentence_length", "65536"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  sentencepiece::SetRandomGeneratorSeed(1);  // unigram samples; BPE is deterministic anyway
  LineIterator lines(text);
  if (lines.done()) throw DataError("sentencepiece: the train split has no text to train on");
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (!status.ok()) throw DataError("sentencepiece training failed: " + status.ToString());
  return model;
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::filesystem::path& model_file) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(model_file.string());
  if (!status.ok())
    throw DataError("cannot load sentencepiece model " + model_file.string() + ": " + status.ToString());
  SentencePieceModel model = parse_sentencepiece_model(processor->serialized_model_proto(), model_file.string());
  std::string id = "sentencepiece:" + model.model_type + ":" + std::to_string(processor->GetPieceSize()) + ":" +
                   sha256_file(model_file);
  if (processor->PieceToId("<0x0A>") == processor->unk_id())
    throw DataError("sentencepiece model " + model_file.string() +
                    " has no byte piece <0x0A>: it was not trained with byte_fallback");
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(std::move(processor), std::move(model), std::move(id)));
}

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor,
                                               SentencePieceModel model, std::string id)
    : processor_(std::move(processor)),
      model_(std::move(model)),
      id_(std::move(id)),
      newline_id_(processor_->PieceToId("<0x0A>")) {}

std::string SentencePieceTokenizer::serialized_model() const { return processor_->serialized_model_proto(); }

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::vector<TokenSpan> SentencePieceTokenizer::encode_spans(const std::string& text) const {
  std::vector<TokenSpan> tokens;
  size_t line_start = 0;
  while (line_start <= text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    if (line_end > line_start) {
      const std::string_view line = std::string_view(text).substr(line_start, line_end - line_start);
      const auto pieces = processor_->EncodeAsImmutableProto(line);
      for (const auto& piece : pieces.pieces())
        tokens.push_back({static_cast<int32_t>(piece.id()), line_start + piece.begin(), line_start + piece.end()});
    }
    if (line_end == text.size()) break;
    tokens.push_back({newline_id_, line_end, line_end + 1});
    line_start = line_end + 1;
  }
  return tokens;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw DataError("sentencepiece decode failed: " + status.ToString());
  return text;
}

}  // namespace mixlab::data
