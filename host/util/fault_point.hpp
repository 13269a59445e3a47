// Crash points for the resume tests: MIXLAB_FAULT_POINT=<name>:<step> makes
// the process kill itself (SIGKILL, as the kernel's OOM killer or `kill -9`
// would) when it reaches the named point at that step. The points are listed
// in docs/fault-model.md (## Checkpoints); without the variable each call is a
// no-op. A malformed value is an error at the first point reached.
#pragma once

#include <cstdint>
#include <string_view>

namespace mixlab {

// The named points (the strings MIXLAB_FAULT_POINT accepts).
inline constexpr std::string_view kFaultMidStep = "mid-step";                   // after backward, before optimizer.step()
inline constexpr std::string_view kFaultCheckpointWrite = "checkpoint-write";   // model.safetensors written, folder not renamed
inline constexpr std::string_view kFaultCheckpointDone = "checkpoint-done";     // folder renamed, DONE not yet written
inline constexpr std::string_view kFaultFinalManifest = "final-manifest";       // final manifest's temporary file written, not renamed

// Kills the process when MIXLAB_FAULT_POINT names this point and step.
void fault_point(std::string_view name, int64_t step);

}  // namespace mixlab
