// Where a text corpus comes from: a UTF-8 file, a folder of .txt files, the
// Debian KJV Bible (builtin:kjv) or the grammar generator (builtin:grammar).
// Resolving a source is cheap; the text itself is produced only when the
// token cache has to be (re)built.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/grammar.hpp"
#include "data/options.hpp"

namespace mixlab::data {

struct TextSplits {
  ClassedText train;  // byte_classes empty unless the corpus has classes
  ClassedText val;
};

struct TextSource {
  std::string name;      // short and readable, names the cache folder: "kjv", "grammar", a file stem
  std::string identity;  // what the cache key hashes: content sha256 or generator parameters
  std::string summary;   // for describe(): "grammar seed=0 sentences=50000", "3 .txt files"
  std::function<TextSplits()> load;
  std::vector<std::string> class_names;  // empty unless the corpus has classes
};

// `source` is a path or builtin:kjv / builtin:grammar; extracted KJV text is cached under cache_dir/sources/.
TextSource resolve_text_source(const std::string& source, double val_fraction, uint64_t seed, Options& options,
                               const std::filesystem::path& cache_dir);

// The last `val_fraction` of `text` is validation; the cut moves forward to the
// next line start so that no line is split.
TextSplits split_text(std::string text, double val_fraction);

}  // namespace mixlab::data
