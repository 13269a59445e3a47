#include "data/dataset.hpp"

#include <algorithm>

#include "data/options.hpp"
#include "data/probe_dataset.hpp"
#include "data/text_dataset.hpp"

namespace mixlab::data {

namespace {

std::vector<std::string> builtins() {
  std::vector<std::string> names = {"builtin:grammar", "builtin:kjv"};
  names.insert(names.end(), probe_sources().begin(), probe_sources().end());
  return names;
}
const std::vector<std::string> kTokenizerKinds = {"byte", "sentencepiece"};

void check_spec(const DataSpec& data, const TokenizerSpec& tok) {
  const std::vector<std::string> known = builtins();
  std::string expected = "a UTF-8 text file, a folder of .txt files, or one of ";
  for (size_t i = 0; i < known.size(); ++i) expected += (i ? ", " : "") + known[i];
  if (data.source.empty()) throw DataError("data.source is empty: expected " + expected);
  if (data.source.rfind("builtin:", 0) == 0 && std::find(known.begin(), known.end(), data.source) == known.end())
    throw DataError("unknown builtin corpus '" + data.source + "'" + did_you_mean(data.source, known) +
                    ": expected " + expected);
  if (!(data.val_fraction > 0.0 && data.val_fraction < 1.0))
    throw DataError("data.val_fraction: expected a number in (0, 1), got " + std::to_string(data.val_fraction));
  const bool probe = is_probe_source(data.source);
  if (!probe && std::find(kTokenizerKinds.begin(), kTokenizerKinds.end(), tok.kind) == kTokenizerKinds.end())
    throw DataError("tokenizer.kind: expected \"byte\" or \"sentencepiece\", got \"" + tok.kind + "\"" +
                    did_you_mean(tok.kind, kTokenizerKinds));
  if (tok.kind == "byte" && tok.vocab_size != 0 && tok.vocab_size != 256)
    throw DataError("tokenizer.vocab_size: the byte tokenizer has 256 ids, got " + std::to_string(tok.vocab_size));
}

}  // namespace

std::unique_ptr<Dataset> Dataset::open(const DataSpec& data, const TokenizerSpec& tok,
                                       const std::filesystem::path& cache_dir) {
  check_spec(data, tok);
  Options options(data.source, data.options);
  if (is_probe_source(data.source)) return open_probe_dataset(data, tok, options);
  return open_text_dataset(data, tok, options, cache_dir);
}

}  // namespace mixlab::data
