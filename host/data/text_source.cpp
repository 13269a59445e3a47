#include "data/text_source.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "data/error.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

namespace mixlab::data {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot read " + path.string());
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw DataError("error while reading " + path.string());
  return contents.str();
}

// The .txt files under `folder`, recursively, in a stable order.
std::vector<fs::path> text_files(const fs::path& folder) {
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::recursive_directory_iterator it(folder, error), end; !error && it != end; it.increment(error))
    if (it->is_regular_file() && it->path().extension() == ".txt") files.push_back(it->path());
  if (error) throw DataError("cannot list " + folder.string() + ": " + error.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError("data.source: the folder " + folder.string() + " has no .txt files");
  return files;
}

std::string file_kind(const fs::file_status& status) {
  switch (status.type()) {
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::fifo: return "a FIFO (named pipe)";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

void require_text(const std::string& text, const std::string& what) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw DataError("data.source: " + what + " is empty");
}

// The KJV as one verse per line, without the "Ge1:1 " references, extracted
// once with the `bible` program of Debian's bible-kjv package.
std::string kjv_text(const fs::path& cache_dir) {
  const fs::path cached = cache_dir / "sources" / "kjv.txt";
  if (fs::exists(cached)) return read_file(cached);
  const char* kDataFile = "/usr/lib/bible.data";
  const std::string command = "bible -f -p /usr/lib gen1:1-rev22:21 2>/dev/null";
  const std::string install_hint = " (install it: apt-get install bible-kjv, or `make deps`)";
  if (!fs::exists(kDataFile)) throw DataError(std::string("builtin:kjv needs ") + kDataFile + install_hint);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw DataError("builtin:kjv: cannot run `" + command + "`");
  std::string text;
  std::array<char, 1 << 16> buffer{};
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0;) text.append(buffer.data(), n);
  const int status = pclose(pipe.release());
  if (status != 0 || text.empty())
    throw DataError("builtin:kjv: `" + command + "` failed (exit status " +
                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")" + install_hint);
  std::string verses;
  verses.reserve(text.size());
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    verses.append(line, space + 1);
    verses += '\n';
  }
  require_text(verses, "the output of `" + command + "`");
  fs::create_directories(cached.parent_path());
  write_file_atomic(cached, verses);
  log::info("data: extracted the KJV text to " + cached.string() + " (" + std::to_string(verses.size()) + " bytes)");
  return verses;
}

}  // namespace

TextSplits split_text(std::string text, double val_fraction) {
  size_t cut = static_cast<size_t>(std::floor(static_cast<double>(text.size()) * (1.0 - val_fraction)));
  const size_t line_start = text.find('\n', cut == 0 ? 0 : cut - 1);
  if (line_start != std::string::npos && line_start + 1 < text.size()) cut = line_start + 1;
  // Never split a UTF-8 character when the text has no newline to cut at.
  while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
  TextSplits splits;
  splits.val.text = text.substr(cut);
  text.resize(cut);
  splits.train.text = std::move(text);
  return splits;
}

TextSource resolve_text_source(const std::string& source, double val_fraction, uint64_t seed, Options& options,
                               const fs::path& cache_dir) {
  TextSource resolved;
  if (source == "builtin:grammar") {
    const int64_t sentences = options.integer("sentences", 50000, 2);
    std::ostringstream identity;
    identity << "grammar-v1 seed=" << seed << " sentences=" << sentences << " val_fraction=" << val_fraction;
    resolved.name = "grammar";
    resolved.identity = identity.str();
    resolved.summary = "grammar seed=" + std::to_string(seed) + " sentences=" + std::to_string(sentences);
    resolved.class_names = grammar_class_names();
    resolved.load = [=] {
      GrammarCorpus corpus = generate_grammar(seed, sentences, val_fraction);
      return TextSplits{std::move(corpus.train), std::move(corpus.val)};
    };
    return resolved;
  }
  if (source == "builtin:kjv") {
    resolved.name = "kjv";
    resolved.identity = "kjv-v1 val_fraction=" + std::to_string(val_fraction);
    resolved.summary = "King James Bible";
    resolved.load = [=] { return split_text(kjv_text(cache_dir), val_fraction); };
    return resolved;
  }

  const fs::path path(source);
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status))
    throw DataError("data.source: no file or folder " + path.string() +
                    " (expected a UTF-8 text file, a folder of .txt files, or builtin:grammar|mqar|copy|kjv)");
  // A device, FIFO or socket never ends (/dev/zero) or blocks until a writer comes: refuse it.
  if (!fs::is_directory(status) && !fs::is_regular_file(status))
    throw DataError("data.source: " + path.string() + " is " + file_kind(status) +
                    ", not a regular file or a folder (expected a UTF-8 text file or a folder of .txt files)");
  resolved.name = path.stem().string();
  std::vector<fs::path> files = fs::is_directory(status) ? text_files(path) : std::vector<fs::path>{path};
  resolved.identity = "text-v1 val_fraction=" + std::to_string(val_fraction);
  resolved.summary = std::to_string(files.size()) + (files.size() == 1 ? " text file" : " .txt files");
  for (const auto& file : files) {
    try {
      resolved.identity += " " + fs::relative(file, path).generic_string() + ":" + sha256_file(file);
    } catch (const std::exception& e) {
      throw DataError("cannot read " + file.string() + ": " + e.what());
    }
  }
  resolved.load = [files, path, val_fraction] {
    std::string text;
    for (const auto& file : files) {
      text += read_file(file);
      if (!text.empty() && text.back() != '\n') text += '\n';  // files never run into each other
    }
    require_text(text, path.string());
    return split_text(std::move(text), val_fraction);
  };
  return resolved;
}

}  // namespace mixlab::data
