// `host conformance`: runs the suite against every implementation of a plugin,
// each check in a worker process with a time limit, so a plugin that crashes
// fails the check it died in and the suite goes on; a plugin that hangs fails
// that check and the implementation's remaining checks are not run.
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
  double timeout_s = 300.0;             // per check; one hang ends that implementation's run
  std::vector<std::string> only;        // run only these checks (empty: all)
};

// Prints one line per check as its verdict arrives and a closing "N passed,
// N failed, N skipped" line; returns 0 when nothing failed, 1 when a check
// failed, 2 when the target cannot be loaded or the device is not there, 3 when interrupted by SIGINT or
// SIGTERM (the verdicts so far are printed and written to the JUnit file).
int run_conformance(const RunnerOptions& options);

// The worker side: runs `checks` on `subject` in this process and reports each
// on stdout as a protocol line.
int run_worker(const Subject& subject, const std::vector<std::string>& checks);

}  // namespace mixlab::conformance
