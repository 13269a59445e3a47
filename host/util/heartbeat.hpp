// A worker's progress, told to the `host run` supervisor that started it: one
// line "<phase> <step>" per event on a socket whose descriptor the supervisor
// passes in MIXLAB_HEARTBEAT_FD. The supervisor learns from it when training
// has started, the last completed step, and whether a step hangs
// (training.step_timeout_s). Without the variable (host compare, tests) send()
// does nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mixlab::heartbeat {

inline constexpr const char* kFdVariable = "MIXLAB_HEARTBEAT_FD";

enum class Phase {
  train,       // step `step + 1` is under way (`step` steps are complete)
  validate,    // validation after step `step`
  checkpoint,  // writing the checkpoint of step `step`
  finish,      // training is over; writing results (no time limit)
};

struct Beat {
  Phase phase = Phase::train;
  int64_t step = 0;
};

// Worker side. Never throws and never blocks: a supervisor that is gone is ignored.
void send(Phase phase, int64_t step);

// Supervisor side: one line (without its newline), or nothing when it is not a beat.
std::optional<Beat> parse(const std::string& line);
const char* phase_name(Phase phase);
// What the worker was doing: "step 13", "validation after step 12", "the checkpoint of step 12", ...
std::string describe(const Beat& beat);

}  // namespace mixlab::heartbeat
