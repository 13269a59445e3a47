// The environment torchrun gives each worker process (or a user sets by hand):
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// torchrun's TORCHELASTIC_* variables. Read by the `host run` supervisor (which
// rank it is, which run folder) and by the worker's data-parallel training.
#pragma once

#include <optional>
#include <string>

namespace mixlab {

// The environment torchrun gives every worker (or the user sets by hand).
struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store
  std::string run_id;        // TORCHELASTIC_RUN_ID, "" when unset or "none"
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT

  // nullopt when WORLD_SIZE is unset (a single process); throws std::runtime_error
  // naming the variable when the environment is partial or malformed.
  static std::optional<LaunchEnv> from_environment();
};

// ATen threads for training.threads = 0: OMP_NUM_THREADS when set (torchrun sets 1
// for several processes per node), else the cores shared among the local ranks.
int default_thread_count();

}  // namespace mixlab
