// `host conformance`: runs the suite against every implementation of a plugin,
// each check in a worker process with a time limit, so a plugin that crashes or
// hangs fails the check it died in and the suite goes on.
#pragma once

#include "conformance/checks.hpp"

#include <optional>
#include <string>
#include <vector>

namespace mixlab::conformance {

struct RunnerOptions {
  std::string target;                   // a plugin name or a path to a plugin file
  std::optional<std::string> impl;      // only this implementation
  Subject base;                         // config, dtypes, seed, sizes
  std::optional<std::string> junit;     // write a JUnit XML report here
  double timeout_s = 300.0;             // per check
  std::vector<std::string> only;        // run only these checks (empty: all)
};

// Prints one line per check and a closing "N passed, N failed, N skipped" line;
// returns 0 when nothing failed.
int run_conformance(const RunnerOptions& options);

// The worker side: runs `checks` on `subject` in this process and reports each
// on stdout as a protocol line.
int run_worker(const Subject& subject, const std::vector<std::string>& checks);

}  // namespace mixlab::conformance
