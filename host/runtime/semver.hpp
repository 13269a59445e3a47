// Semantic versions ("1.2.3") and the version requirements an experiment may
// pin a plugin with: "1.2.3" or "=1.2.3" (exact), "^1.2" (same major, at least
// 1.2), "~1.2" (same major.minor, at least 1.2.0), ">=1.0", "<2", "*", and
// comma-separated conjunctions such as ">=1.1, <1.4".
#pragma once

#include <optional>
#include <string>

namespace mixlab {

struct Version {
  int major = 0, minor = 0, patch = 0;
  std::string prerelease;

  static std::optional<Version> parse(const std::string& text);
  std::string str() const;
};

// Semver precedence: <0, 0, >0 (a pre-release sorts before its release).
int compare(const Version& a, const Version& b);

// Throws std::invalid_argument for a malformed requirement.
bool satisfies(const Version& version, const std::string& requirement);
// Empty string if valid, else what is wrong.
std::string check_requirement(const std::string& requirement);

}  // namespace mixlab
