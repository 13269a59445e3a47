// Reading the `options` table of a builtin corpus: every key a generator reads
// is recorded with its value (defaults included, for the cache key and the
// logs), and finish() rejects the keys nobody read, with a did-you-mean.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mixlab::data {

// "  (did you mean 'x'?)" for the candidate closest to `name` by edit distance,
// or "" when none is close.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates);

class Options {
 public:
  Options(std::string corpus, std::map<std::string, double> given);

  int64_t integer(const std::string& key, int64_t fallback, int64_t min_value);
  double real(const std::string& key, double fallback, double min_value, double max_value);
  bool flag(const std::string& key, bool fallback);
  // Throws DataError naming every unknown key and the keys this corpus takes.
  void finish() const;

  const std::map<std::string, double>& resolved() const { return resolved_; }

 private:
  double take(const std::string& key, double fallback);
  [[noreturn]] void fail(const std::string& key, const std::string& expected, double got) const;

  std::string corpus_;
  std::map<std::string, double> given_;
  std::map<std::string, double> resolved_;
};

}  // namespace mixlab::data
