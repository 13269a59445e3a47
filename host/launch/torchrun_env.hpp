// The environment of torchrun's workers (read back by train/launch_env.hpp):
// RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
// MASTER_PORT. `host run --nproc N` sets it for its N workers;
// under an external launcher (torchrun --no-python build/host run ...) each
// `host run` finds it already set and passes it through.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace mixlab {

// The variables of worker `rank` out of `nproc` on this machine (MASTER_PORT: `port`).
// TORCHELASTIC_USE_AGENT_STORE is removed: rank 0's worker hosts the c10d store.
std::map<std::string, std::optional<std::string>> torchrun_env(int64_t rank, int64_t nproc, int port);

// A TCP port on 127.0.0.1 free at the time of the call.
int free_port();

}  // namespace mixlab
