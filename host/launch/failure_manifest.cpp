#include "launch/failure_manifest.hpp"

#include "train/run_folder.hpp"
#include "util/atomic_file.hpp"
#include "util/interrupt_signals.hpp"
#include "util/system_info.hpp"

namespace mixlab {

void record_worker_end(const std::filesystem::path& run_dir, const std::string& job_name,
                       const WorkerEndRecord& record) {
  nlohmann::json manifest = read_manifest(run_dir);
  if (!manifest.is_object()) manifest = {{"schema_version", 1}, {"name", job_name}};
  manifest["status"] = record.status;
  manifest["error"] = record.error;
  if (record.signal) manifest["signal"] = {{"number", record.signal}, {"name", signal_name(record.signal)}};
  if (record.last_completed_step) manifest["last_completed_step"] = *record.last_completed_step;
  manifest["finished_at"] = utc_now();
  write_file_atomic(run_dir / "manifest.json", manifest.dump(2));
}

}  // namespace mixlab
