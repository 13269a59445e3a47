// Supervising a group of worker processes, as torchrun's agent does: start
// each (own process group, so a terminal's Ctrl-C reaches only the
// supervisor, which forwards it), forward SIGINT/SIGTERM/SIGHUP, read each
// worker's heartbeat, and on the first failure (a non-zero exit, a death by a
// signal, a step over its time limit) stop the others: SIGTERM, then SIGKILL
// after a grace period. A worker whose supervisor dies gets SIGTERM.
#pragma once

#include "util/heartbeat.hpp"
#include "util/interrupt_signals.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

struct WorkerCommand {
  std::vector<std::string> argv;  // argv[0]: the program's absolute path
  // Set (a value) or removed (nullopt) in the worker's copy of this process's environment.
  std::map<std::string, std::optional<std::string>> env;
};

struct SupervisionOptions {
  double step_timeout_s = 0;  // > 0: a heartbeat phase (train, validate, checkpoint) that lasts longer fails
  double stop_grace_s = 5;    // SIGTERM to SIGKILL when workers are stopped
};

// How one worker ended.
struct WorkerEnd {
  int exit_code = -1;                   // when it exited
  int signal = 0;                       // when a signal killed it
  bool stopped = false;                 // the supervisor stopped it (another failed, or it hung)
  std::optional<heartbeat::Beat> last;  // its last heartbeat: none if it never reached training
  std::string describe() const;         // "exited with code 1", "killed by signal 11 (SIGSEGV)"
};

struct GroupOutcome {
  std::vector<WorkerEnd> workers;  // by rank (the order of the commands)
  std::optional<size_t> failed;    // the first worker to fail
  std::string failure;             // what happened to it, naming the rank when there are several
  bool timed_out = false;          // the failure is a step over training.step_timeout_s
  int forwarded = 0;               // the last stop signal forwarded to the workers (0: none)
};

// Starts every command and returns when all have ended. Signals that arrive
// through `signals` are forwarded to every worker still running.
GroupOutcome supervise_workers(const std::vector<WorkerCommand>& commands, const SupervisionOptions& options,
                               InterruptSignals& signals);

}  // namespace mixlab
