// Facts about this process and machine for manifests.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace mixlab {

double peak_rss_mib();                 // VmHWM of this process
double current_rss_mib();              // VmRSS of this process
void reset_peak_rss();                 // restart VmHWM from the current RSS (Linux clear_refs)
nlohmann::json git_info();             // {"commit": ..., "dirty": ...} of the mixlab source tree, or nulls
std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ");
std::string short_id();                // 6 random hex digits
std::string cpu_model();
// Bytes this process can still allocate without swapping: MemAvailable of /proc/meminfo,
// lowered by a cgroup v2 memory.max when one is set; nothing when neither can be read.
std::optional<double> available_memory_bytes();

std::string host_name();

}  // namespace mixlab
