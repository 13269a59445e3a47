#include "data/text_dataset.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "data/batch.hpp"
#include "data/rng.hpp"
#include "data/sentencepiece_tokenizer.hpp"
#include "data/text_source.hpp"
#include "data/token_shard.hpp"
#include "util/atomic_file.hpp"
#include "util/human_units.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

namespace mixlab::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kCacheFormat = 1;
constexpr uint64_t kWindowStream = 0x77696e646f77ull;  // "window"

// One split as it sits in the cache.
struct SplitShards {
  MappedShard tokens;
  MappedShard classes;  // empty unless the corpus has classes
};

// The class of a token: that of the first byte it covers that is not
// whitespace ("▁the" is a determiner), else of its first byte.
std::vector<uint32_t> token_classes(const std::vector<TokenSpan>& tokens, const std::vector<uint8_t>& byte_classes,
                                    const std::string& text) {
  std::vector<uint32_t> classes(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const size_t begin = std::min(tokens[i].begin, byte_classes.size() - 1);
    const size_t end = std::max(begin + 1, std::min(tokens[i].end, byte_classes.size()));
    classes[i] = byte_classes[begin];
    for (size_t b = begin; b < end; ++b) {
      if (text[b] != ' ' && text[b] != '\n') {
        classes[i] = byte_classes[b];
        break;
      }
    }
  }
  return classes;
}

class TextDataset final : public Dataset {
 public:
  TextDataset(const DataSpec& data, const TokenizerSpec& tok, Options& options, const fs::path& cache_dir)
      : seed_(data.seed) {
    TextSource source = resolve_text_source(data.source, data.val_fraction, data.seed, options, cache_dir);
    options.finish();
    class_names_ = source.class_names;
    json key = {{"format", kCacheFormat}, {"source", source.identity}, {"tokenizer", {{"kind", tok.kind}}}};
    if (tok.kind == "sentencepiece" && !tok.model_file.empty()) {
      if (!fs::is_regular_file(tok.model_file))
        throw DataError("tokenizer.model_file " + tok.model_file + ": no such file");
      key["tokenizer"]["model_file_sha256"] = sha256_file(tok.model_file);
    }
    else if (tok.kind == "sentencepiece")
      key["tokenizer"].update({{"model_type", tok.model_type}, {"vocab_size", tok.vocab_size}});
    cache_path_ = cache_dir / (source.name + "-" + sha256_string(key.dump()).substr(0, 16));

    load_tokenizer(tok);
    try {
      if (tokenizer_ && fs::exists(cache_path_ / "meta.json")) {
        load_shards();
        loaded_from_cache_ = true;
      }
    } catch (const DataError& error) {
      log::warn("data: the cache in " + cache_path_.string() + " is unusable (" + error.what() + "); rebuilding it");
    }
    if (!loaded_from_cache_) build(source, tok);

    std::ostringstream line;
    line << data.source << " (" << source.summary << ") | tokenizer "
         << tokenizer_->id().substr(0, 40) << " vocab " << tokenizer_->vocab_size() << " | train "
         << human_count(train_tokens()) << " tokens, val " << human_count(val_tokens()) << " tokens";
    if (!class_names_.empty()) line << ", " << class_names_.size() << " token classes";
    line << " | cache " << cache_path_.string();
    description_ = line.str();
  }

  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  int64_t train_tokens() const override { return train_.tokens.size(); }
  int64_t val_tokens() const override { return val_.tokens.size(); }
  std::vector<std::string> class_names() const override { return class_names_; }
  bool is_probe_task() const override { return false; }
  std::string describe() const override { return description_; }
  bool loaded_from_cache() const override { return loaded_from_cache_; }
  fs::path cache_path() const override { return cache_path_; }

  double val_bytes_per_token() const override {
    return static_cast<double>(val_bytes_) / static_cast<double>(val_tokens());
  }

  double unigram_cross_entropy() const override {
    if (!unigram_cross_entropy_) {
      std::vector<double> counts(static_cast<size_t>(tokenizer_->vocab_size()), 1.0);
      for (int64_t i = 0; i < train_tokens(); ++i) counts[train_.tokens[i]] += 1.0;
      const double total = static_cast<double>(train_tokens() + tokenizer_->vocab_size());
      double nats = 0.0;
      for (int64_t i = 0; i < val_tokens(); ++i) nats -= std::log(counts[val_.tokens[i]] / total);
      unigram_cross_entropy_ = nats / static_cast<double>(val_tokens());
    }
    return *unigram_cross_entropy_;
  }

  Batch next_train(int64_t batch, int64_t seq_len) override {
    check_batch_shape(batch, seq_len);
    require_window("train", train_tokens(), seq_len);
    const auto starts = static_cast<uint64_t>(train_tokens() - seq_len);
    Batch out = allocate_batch(batch, seq_len, !class_names_.empty());
    for (int64_t row = 0; row < batch; ++row) {
      Rng rng({seed_, kWindowStream, position_ + static_cast<uint64_t>(row)});
      fill_row(out, row, train_, static_cast<int64_t>(rng.below(starts)), seq_len);
    }
    position_ += static_cast<uint64_t>(batch);
    return out;
  }

  std::vector<Batch> validation(int64_t batch, int64_t seq_len, int64_t max_batches) const override {
    check_batch_shape(batch, seq_len);
    require_window("validation", val_tokens(), seq_len);
    const int64_t windows = (val_tokens() - 1) / seq_len;
    std::vector<Batch> batches;
    for (int64_t first = 0; first < windows && (max_batches <= 0 || std::ssize(batches) < max_batches);
         first += batch) {
      const int64_t rows = std::min(batch, windows - first);
      Batch out = allocate_batch(rows, seq_len, !class_names_.empty());
      for (int64_t row = 0; row < rows; ++row) fill_row(out, row, val_, (first + row) * seq_len, seq_len);
      batches.push_back(std::move(out));
    }
    return batches;
  }

 private:
  // Row `row` of `out` from tokens [start, start + seq_len] of `split`.
  static void fill_row(Batch& out, int64_t row, const SplitShards& split, int64_t start, int64_t seq_len) {
    int64_t* inputs = out.inputs.data_ptr<int64_t>() + row * seq_len;
    int64_t* targets = out.targets.data_ptr<int64_t>() + row * seq_len;
    for (int64_t t = 0; t < seq_len; ++t) {
      inputs[t] = split.tokens[start + t];
      targets[t] = split.tokens[start + t + 1];
    }
    if (out.classes.defined()) {
      int64_t* classes = out.classes.data_ptr<int64_t>() + row * seq_len;
      for (int64_t t = 0; t < seq_len; ++t) classes[t] = split.classes[start + t + 1];
    }
  }

  // Byte needs nothing; a cached SentencePiece model is reused, else build() trains one.
  void load_tokenizer(const TokenizerSpec& tok) {
    if (tok.kind == "byte") {
      tokenizer_ = make_byte_tokenizer();
      return;
    }
    if (!tok.model_file.empty()) {  // given, never retrained
      tokenizer_ = SentencePieceTokenizer::load(tok.model_file);
      if (tok.vocab_size != tokenizer_->vocab_size())
        throw DataError("tokenizer.model_file " + tok.model_file + " has " + std::to_string(tokenizer_->vocab_size()) +
                        " pieces; tokenizer.vocab_size says " + std::to_string(tok.vocab_size));
      return;
    }
    const fs::path model = cache_path_ / "tokenizer.model";
    if (!fs::exists(model)) return;
    try {
      tokenizer_ = SentencePieceTokenizer::load(model);
    } catch (const DataError& error) {
      log::warn(std::string("data: retraining the tokenizer: ") + error.what());
    }
  }

  void load_shards() {
    std::ifstream in(cache_path_ / "meta.json");
    json meta;
    try {
      meta = json::parse(in);
    } catch (const json::exception& error) {
      throw DataError("meta.json does not parse: " + std::string(error.what()));
    }
    if (meta.value("format", 0) != kCacheFormat || meta.value("tokenizer", "") != tokenizer_->id())
      throw DataError("meta.json was written for another format or tokenizer");
    val_bytes_ = meta.at("val_bytes").get<int64_t>();
    const ShardDtype dtype = token_dtype(tokenizer_->vocab_size());
    for (auto [split, name] : {std::pair{&train_, "train"}, std::pair{&val_, "val"}}) {
      split->tokens = MappedShard::open(cache_path_ / (std::string(name) + ".bin"), tokenizer_->id(), dtype);
      if (split->tokens.size() != meta.at(std::string(name) + "_tokens").get<int64_t>())
        throw DataError(std::string(name) + ".bin does not hold the token count of meta.json");
      if (class_names_.empty()) continue;
      split->classes =
          MappedShard::open(cache_path_ / (std::string(name) + ".classes.bin"), tokenizer_->id(), ShardDtype::UInt8);
      if (split->classes.size() != split->tokens.size())
        throw DataError(std::string(name) + ".classes.bin and " + name + ".bin differ in length");
    }
  }

  void build(const TextSource& source, const TokenizerSpec& tok) {
    const auto started = std::chrono::steady_clock::now();
    TextSplits splits = source.load();
    if (splits.train.text.empty()) throw DataError("data.source " + source.name + ": the train split is empty");
    if (splits.val.text.empty())
      throw DataError("data.source " + source.name + ": the validation split is empty (raise data.val_fraction)");
    fs::create_directories(cache_path_);
    if (!tokenizer_) {
      const fs::path model = cache_path_ / "tokenizer.model";
      write_file_atomic(model, SentencePieceTokenizer::train(splits.train.text, tok));
      tokenizer_ = SentencePieceTokenizer::load(model);
      log::info("data: trained " + tokenizer_->id() + " on " + std::to_string(splits.train.text.size()) + " bytes");
    }
    const ShardDtype dtype = token_dtype(tokenizer_->vocab_size());
    json meta = {{"format", kCacheFormat},
                 {"source", source.identity},
                 {"tokenizer", tokenizer_->id()},
                 {"val_bytes", splits.val.text.size()},
                 {"class_names", class_names_}};
    for (auto [split, name] : {std::pair{&splits.train, "train"}, std::pair{&splits.val, "val"}}) {
      const std::vector<TokenSpan> tokens = tokenizer_->encode_spans(split->text);
      std::vector<uint32_t> ids(tokens.size());
      for (size_t i = 0; i < tokens.size(); ++i) ids[i] = static_cast<uint32_t>(tokens[i].id);
      write_shard(cache_path_ / (std::string(name) + ".bin"), dtype, ids, tokenizer_->id());
      if (!class_names_.empty())
        write_shard(cache_path_ / (std::string(name) + ".classes.bin"), ShardDtype::UInt8,
                    token_classes(tokens, split->byte_classes, split->text), tokenizer_->id());
      meta[std::string(name) + "_tokens"] = tokens.size();
    }
    write_file_atomic(cache_path_ / "meta.json", meta.dump(2) + "\n");  // last: it marks the cache complete
    load_shards();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::ostringstream message;
    message << "data: built " << cache_path_.string() << " (" << train_tokens() << " train and " << val_tokens()
            << " val tokens) in " << seconds << " s";
    log::info(message.str());
  }

  uint64_t seed_;
  fs::path cache_path_;
  std::unique_ptr<Tokenizer> tokenizer_;
  SplitShards train_, val_;
  std::vector<std::string> class_names_;
  int64_t val_bytes_ = 0;
  bool loaded_from_cache_ = false;
  std::string description_;
  mutable std::optional<double> unigram_cross_entropy_;
};

}  // namespace

std::unique_ptr<Dataset> open_text_dataset(const DataSpec& data, const TokenizerSpec& tok, Options& options,
                                           const fs::path& cache_dir) {
  return std::make_unique<TextDataset>(data, tok, options, cache_dir);
}

}  // namespace mixlab::data
