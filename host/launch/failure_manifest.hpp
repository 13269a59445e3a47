// What the `host run` supervisor writes into manifest.json when the worker
// could not: the worker died by a signal (a segfault, an abort, the
// out-of-memory killer), hung past training.step_timeout_s, or exited leaving
// the status "running". The worker's manifest is kept and updated; when it
// died before writing one, a minimal manifest is written. Atomic, like every
// manifest write.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace mixlab {

struct WorkerEndRecord {
  std::string status;  // "failed" or "interrupted"
  std::string error;
  int signal = 0;                              // the signal that killed the worker, if one did
  std::optional<int64_t> last_completed_step;  // from its heartbeat
};

void record_worker_end(const std::filesystem::path& run_dir, const std::string& job_name,
                       const WorkerEndRecord& record);

}  // namespace mixlab
