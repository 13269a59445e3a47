// `host run --profile-steps K`: LibTorch's profiler (Kineto, CPU activities) over K
// training steps, written into the run folder as profile.txt (the ops ranked by self
// CPU time per step) and profile.json (a Chrome trace: chrome://tracing, Perfetto).
// The run's first step is not profiled: it pays one-time costs (allocations,
// kernel selection) that no later step has.
#pragma once

#include <cstdint>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace mixlab {

// One profiled op: a name, its thread and its [start, end) in nanoseconds.
struct OpInterval {
  std::string name;
  uint64_t thread = 0;
  uint64_t start_ns = 0, end_ns = 0;
};

struct OpTotal {
  std::string name;
  int64_t calls = 0;
  double self_ns = 0, total_ns = 0;
};

// Self time of each op name summed over its calls (an op's time minus that of the ops
// it called, which run nested inside it on the same thread); sorted by self time, largest first.
std::vector<OpTotal> op_totals(std::vector<OpInterval> ops);

class StepProfiler {
 public:
  // Profiles steps first_step + 2 .. first_step + 1 + steps (1-based) of a run that starts after
  // first_step completed steps; steps = 0 profiles nothing.
  StepProfiler(int64_t steps, int64_t first_step);
  ~StepProfiler();  // stops a profiler still running (the run ended early or threw)
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  // Around each training step: the completed steps before it and after it. Writes
  // profile.txt and profile.json into run_dir (when `write`) after the last profiled step and
  // returns true then.
  void step_starts(int64_t done_before);
  bool step_ended(int64_t done, const std::filesystem::path& run_dir, bool write);

 private:
  int64_t steps_, first_, last_;  // profiling starts when first_ steps are done, ends when last_ are
  bool running_ = false;
  uint64_t wall_start_ns_ = 0;
};

// The table of profile.txt: every op (or the `top` first) by self CPU time, per profiled step.
std::string profile_table(const std::vector<OpTotal>& totals, int64_t steps, double wall_ns, size_t top = SIZE_MAX);

}  // namespace mixlab
