#include "data/options.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "data/error.hpp"

#include <mixlab/edit_distance.hpp>

namespace mixlab::data {

namespace {

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const auto& candidate : candidates) {
    const size_t distance = edit_distance(name, candidate);
    if (best == nullptr || distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  if (best == nullptr || best_distance > std::max<size_t>(2, best->size() / 3)) return "";
  return " (did you mean '" + *best + "'?)";
}

Options::Options(std::string corpus, std::map<std::string, double> given)
    : corpus_(std::move(corpus)), given_(std::move(given)) {}

double Options::take(const std::string& key, double fallback) {
  const auto found = given_.find(key);
  const double value = found == given_.end() ? fallback : found->second;
  resolved_[key] = value;
  return value;
}

void Options::fail(const std::string& key, const std::string& expected, double got) const {
  throw DataError(corpus_ + " option '" + key + "': expected " + expected + ", got " + format_number(got));
}

int64_t Options::integer(const std::string& key, int64_t fallback, int64_t min_value) {
  const double value = take(key, static_cast<double>(fallback));
  if (value != std::floor(value) || value < static_cast<double>(min_value) || value > 1e15)
    fail(key, "an integer >= " + std::to_string(min_value), value);
  return static_cast<int64_t>(value);
}

double Options::real(const std::string& key, double fallback, double min_value, double max_value) {
  const double value = take(key, fallback);
  if (!(value >= min_value && value <= max_value))
    fail(key, "a number in [" + format_number(min_value) + ", " + format_number(max_value) + "]", value);
  return value;
}

bool Options::flag(const std::string& key, bool fallback) {
  const double value = take(key, fallback ? 1.0 : 0.0);
  if (value != 0.0 && value != 1.0) fail(key, "0 or 1", value);
  return value == 1.0;
}

void Options::finish() const {
  std::vector<std::string> known;
  for (const auto& entry : resolved_) known.push_back(entry.first);
  std::string unknown;
  for (const auto& entry : given_) {
    if (resolved_.count(entry.first) != 0) continue;
    unknown += (unknown.empty() ? "'" : ", '") + entry.first + "'" + did_you_mean(entry.first, known);
  }
  if (unknown.empty()) return;
  std::string expected;
  for (const auto& key : known) expected += (expected.empty() ? "" : ", ") + key;
  throw DataError(corpus_ + ": unknown option " + unknown + "; this corpus takes " +
                  (expected.empty() ? "no options" : expected));
}

}  // namespace mixlab::data
