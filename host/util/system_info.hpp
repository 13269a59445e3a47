// Facts about this process and machine for manifests.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mixlab {

double peak_rss_mib();                 // VmHWM of this process
double current_rss_mib();              // VmRSS of this process
void reset_peak_rss();                 // restart VmHWM from the current RSS (Linux clear_refs)
nlohmann::json git_info();             // {"commit": ..., "dirty": ...} of the mixlab source tree, or nulls
std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ");
std::string short_id();                // 6 random hex digits
std::string cpu_model();
std::string host_name();

}  // namespace mixlab
