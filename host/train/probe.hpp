// `host probe`: the synthetic architecture probes (train/probe_plan.hpp) run on
// any mixer. Each subject (a mixer in the standard probe model, or an
// experiment's model) is first checked (the plugin loads, is a mixer, and
// passes the conformance checks a probe depends on), then every cell (task x
// level [x width] x grid point x seed) is trained through the `host run`
// supervisor in DIR/cells/... and marked done by an atomically written
// result.json, so an interrupted probe continues where it stopped and
// completed cells are reused. A setting keeps its best grid point (by mean
// accuracy over seeds) and reports mean ± std over seeds. Writes probe.json,
// probe.md and probe.png into DIR (docs/probe.md).
#pragma once

#include "train/probe_plan.hpp"
#include "train/probe_report.hpp"
#include "train/trainer.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct ProbeOptions {
  std::string suite = "mad";                      // mad | mqar | all
  std::vector<std::string> mixers;                // PLUGIN[:IMPL], each in the standard probe model
  std::vector<std::filesystem::path> experiments;  // or experiments whose models are probed as they are
  int64_t seeds = 1;
  uint64_t first_seed = 0;
  bool full = false;                              // the papers' scale instead of the CPU default
  std::filesystem::path output_dir;               // default: runs/probe-<utc>
  // Narrowing the scale (a reduced sweep, the tests): empty / 0 keeps the scale's.
  std::vector<std::string> tasks;
  int64_t levels = 0;  // the first N levels of each task
  int64_t steps = 0;
  std::vector<double> lrs, weight_decays;
  std::vector<int64_t> widths;
  // Processes per cell (data parallel, docs/distributed.md): each trains batch / nproc sequences
  // of the scale's batch, so a cell's global batch, and its result, do not depend on nproc.
  int64_t nproc = 1;
  // Trains one cell's run into its (absent) run_dir and returns the exit code; the CLI
  // passes the `host run` supervisor.
  std::function<int(const RunOptions&)> train;
};

// Runs what is missing and writes the reports; returns probe.json's content.
// Throws std::runtime_error (or ExperimentError) before training anything when a
// subject is refused, and when interrupted (the message says to run it again).
nlohmann::json run_probe(const ProbeOptions& options);


}  // namespace mixlab
