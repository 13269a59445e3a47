#include "runtime/semver.hpp"

#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace mixlab {
namespace {

// A partial version: "1", "1.2" or "1.2.3"; missing parts are wildcards.
struct Partial {
  Version v;
  int parts = 0;
};

std::optional<Partial> parse_partial(const std::string& text) {
  // Bounded before the (recursive) regex; a number of at most 9 digits fits an int.
  if (text.size() > 64) return std::nullopt;
  static const std::regex re(R"(^(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(?:-([0-9A-Za-z.-]+))?$)");
  std::smatch m;
  if (!std::regex_match(text, m, re)) return std::nullopt;
  Partial p;
  p.v.major = std::stoi(m[1]);
  p.parts = 1;
  if (m[2].matched) p.v.minor = std::stoi(m[2]), p.parts = 2;
  if (m[3].matched) p.v.patch = std::stoi(m[3]), p.parts = 3;
  if (m[4].matched) p.v.prerelease = m[4];
  return p;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

int compare(const Version& a, const Version& b) {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  if (a.prerelease == b.prerelease) return 0;
  if (a.prerelease.empty()) return 1;
  if (b.prerelease.empty()) return -1;
  return a.prerelease < b.prerelease ? -1 : 1;
}

namespace {

bool satisfies_one(const Version& v, const std::string& clause) {
  std::string c = trim(clause);
  if (c.empty() || c == "*") return true;
  std::string op;
  for (const char* candidate : {">=", "<=", "^", "~", ">", "<", "="})
    if (c.rfind(candidate, 0) == 0) {
      op = candidate;
      break;
    }
  auto p = parse_partial(trim(c.substr(op.size())));
  if (!p) throw std::invalid_argument("malformed version requirement \"" + clause + "\"");
  const Version& r = p->v;
  int cmp = compare(v, r);
  if (op.empty() || op == "=") {
    if (p->parts == 3) return cmp == 0;
    return v.major == r.major && (p->parts < 2 || v.minor == r.minor);
  }
  if (op == ">=") return cmp >= 0;
  if (op == "<=") return cmp <= 0;
  if (op == ">") return cmp > 0;
  if (op == "<") return cmp < 0;
  if (op == "^") return v.major == r.major && cmp >= 0;
  return v.major == r.major && v.minor == r.minor && cmp >= 0;  // "~"
}

std::vector<std::string> split_clauses(const std::string& requirement) {
  std::vector<std::string> clauses;
  std::stringstream ss(requirement);
  std::string item;
  while (std::getline(ss, item, ',')) clauses.push_back(item);
  if (clauses.empty()) clauses.push_back("");
  return clauses;
}

}  // namespace

std::optional<Version> Version::parse(const std::string& text) {
  auto p = parse_partial(text);
  if (!p || p->parts != 3) return std::nullopt;
  return p->v;
}

std::string Version::str() const {
  std::string s = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  return prerelease.empty() ? s : s + "-" + prerelease;
}

bool satisfies(const Version& version, const std::string& requirement) {
  for (const auto& clause : split_clauses(requirement))
    if (!satisfies_one(version, clause)) return false;
  return true;
}

std::string check_requirement(const std::string& requirement) {
  try {
    satisfies(Version{}, requirement);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

}  // namespace mixlab
