// `host run` as a supervisor (an agent, as torchrun's is): it resolves the
// experiment (a bad one fails here, before anything is created), creates the
// run folder all at once and locks it, then runs the training in worker
// processes (this executable again, `host run --worker`) and watches them. A
// worker that dies by a signal or hangs past training.step_timeout_s cannot
// record it itself: the supervisor marks the manifest failed. SIGINT, SIGTERM
// and SIGHUP are forwarded to the workers, which stop with a checkpoint.
// docs/fault-model.md says what is guaranteed when.
#pragma once

#include "train/trainer.hpp"

#include <cstdint>

namespace mixlab {

// Exit codes of `host run` beyond the worker's own (0 ok, 1 error, 3 non-finite loss, 130 interrupted).
inline constexpr int kExitWorkerKilled = 4;  // a worker died by a signal (segfault, abort, out-of-memory kill)
inline constexpr int kExitStepTimeout = 5;   // a step, validation or checkpoint outlasted training.step_timeout_s

// Runs `options` in `nproc` workers on this machine (torchrun's environment when
// nproc > 1), or in one worker that inherits an external launcher's RANK and
// WORLD_SIZE. Returns the exit code.
int supervise_run(const RunOptions& options, int64_t nproc);

}  // namespace mixlab
