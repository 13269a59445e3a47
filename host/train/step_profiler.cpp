#include "train/step_profiler.hpp"

#include "util/atomic_file.hpp"
#include "util/log.hpp"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

namespace mixlab {
namespace {

namespace kineto = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace

std::vector<OpTotal> op_totals(std::vector<OpInterval> ops) {
  // Per thread, parents before their children: by start, the longer first.
  std::sort(ops.begin(), ops.end(), [](const OpInterval& a, const OpInterval& b) {
    if (a.thread != b.thread) return a.thread < b.thread;
    if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
    return a.end_ns > b.end_ns;
  });
  std::vector<double> child_ns(ops.size(), 0.0);
  std::vector<size_t> open;  // the ops enclosing the current one, innermost last
  for (size_t i = 0; i < ops.size(); ++i) {
    while (!open.empty() && (ops[open.back()].thread != ops[i].thread || ops[open.back()].end_ns <= ops[i].start_ns))
      open.pop_back();
    if (!open.empty()) child_ns[open.back()] += static_cast<double>(ops[i].end_ns - ops[i].start_ns);
    open.push_back(i);
  }
  std::map<std::string, OpTotal> by_name;
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& t = by_name[ops[i].name];
    t.name = ops[i].name;
    double total = static_cast<double>(ops[i].end_ns - ops[i].start_ns);
    t.calls += 1;
    t.total_ns += total;
    t.self_ns += std::max(0.0, total - child_ns[i]);
  }
  std::vector<OpTotal> out;
  for (auto& [name, t] : by_name) out.push_back(t);
  std::stable_sort(out.begin(), out.end(), [](const OpTotal& a, const OpTotal& b) { return a.self_ns > b.self_ns; });
  return out;
}

std::string profile_table(const std::vector<OpTotal>& totals, int64_t steps, double wall_ns, size_t top) {
  const double per_step = 1.0 / static_cast<double>(std::max<int64_t>(1, steps));
  double self_sum = 0;
  for (const auto& t : totals) self_sum += t.self_ns;
  char line[512];
  std::string out;
  std::snprintf(line, sizeof line,
                "# LibTorch profiler (CPU ops), %lld step(s): %.2f ms per step; ops' self time %.1f%% of it\n",
                static_cast<long long>(steps), wall_ns * per_step / 1e6, 100.0 * self_sum / std::max(wall_ns, 1.0));
  out += line;
  std::snprintf(line, sizeof line, "%-60s %12s %8s %12s %10s\n", "op", "self ms/step", "self %", "total ms/step",
                "calls/step");
  out += line;
  for (size_t i = 0; i < std::min(top, totals.size()); ++i) {
    const auto& t = totals[i];
    std::snprintf(line, sizeof line, "%-60.60s %12.3f %7.1f%% %12.3f %10.1f\n", t.name.c_str(), t.self_ns * per_step / 1e6,
                  100.0 * t.self_ns / std::max(wall_ns, 1.0), t.total_ns * per_step / 1e6,
                  static_cast<double>(t.calls) * per_step);
    out += line;
  }
  return out;
}

StepProfiler::StepProfiler(int64_t steps, int64_t first_step)
    : steps_(steps), first_(first_step + 1), last_(first_step + 1 + steps) {}

StepProfiler::~StepProfiler() {
  if (running_) kineto::disableProfiler();
}

void StepProfiler::step_starts(int64_t done_before) {
  if (steps_ <= 0 || done_before != first_) return;
  const ProfilerConfig config(ProfilerState::KINETO);
  const std::set<ActivityType> activities{ActivityType::CPU};
  kineto::prepareProfiler(config, activities);
  kineto::enableProfiler(config, activities);
  running_ = true;
  wall_start_ns_ = now_ns();
}

bool StepProfiler::step_ended(int64_t done, const std::filesystem::path& run_dir, bool write) {
  if (!running_ || done != last_) return false;
  const double wall_ns = static_cast<double>(now_ns() - wall_start_ns_);
  auto result = kineto::disableProfiler();
  running_ = false;
  if (!write) return false;
  std::vector<OpInterval> ops;
  for (const auto& e : result->events())
    if (e.deviceType() == c10::DeviceType::CPU && !e.isAsync() && e.endNs() >= e.startNs())
      ops.push_back({e.name(), e.startThreadId(), e.startNs(), e.endNs()});
  write_file_atomic(run_dir / "profile.txt", profile_table(op_totals(std::move(ops)), steps_, wall_ns));
  // The trace is written by Kineto itself: to a temporary name, then renamed.
  const auto trace = run_dir / "profile.json", partial = run_dir / "profile.json.partial.json";
  result->save(partial.string());
  std::filesystem::rename(partial, trace);
  log::info("profile of steps " + std::to_string(first_ + 1) + ".." + std::to_string(last_) + ": " +
            (run_dir / "profile.txt").string() + ", " + trace.string());
  return true;
}

}  // namespace mixlab
