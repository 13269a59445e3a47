#include "train/launch_env.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace mixlab {
namespace {

std::optional<std::string> env_value(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, int lo, int hi, std::optional<int> fallback = std::nullopt) {
  auto v = env_value(name);
  if (!v) {
    if (fallback) return *fallback;
    throw std::runtime_error(std::string("distributed launch: ") + name +
                             " is not set (WORLD_SIZE is; a launch needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)");
  }
  char* end = nullptr;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || n < lo || n > hi)
    throw std::runtime_error(std::string("distributed launch: ") + name + "=\"" + *v + "\": expected an integer in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(n);
}

}  // namespace

std::optional<LaunchEnv> LaunchEnv::from_environment() {
  if (!env_value("WORLD_SIZE")) return std::nullopt;
  LaunchEnv env;
  env.world_size = env_int("WORLD_SIZE", 1, 1 << 20);
  if (env.world_size == 1) return std::nullopt;
  env.rank = env_int("RANK", 0, env.world_size - 1);
  env.local_rank = env_int("LOCAL_RANK", 0, env.world_size - 1, env.rank);
  env.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, env.world_size, env.world_size);
  env.master_addr = env_value("MASTER_ADDR").value_or("");
  if (env.master_addr.empty())
    throw std::runtime_error("distributed launch: MASTER_ADDR is not set (the host of rank 0 or of torchrun's store)");
  env.master_port = env_int("MASTER_PORT", 1, 65535);
  env.agent_store = env_value("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  env.run_id = env_value("TORCHELASTIC_RUN_ID").value_or("");
  if (env.run_id == "none") env.run_id.clear();  // torchrun's default rdzv id
  env.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 1 << 20, 0);
  return env;
}

int default_thread_count() {
  if (auto omp = env_value("OMP_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(omp->c_str(), &end, 10);
    if (!omp->empty() && *end == '\0' && n >= 1) return static_cast<int>(n);
  }
  int local = 1;
  if (auto env = LaunchEnv::from_environment()) local = env->local_world_size;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local);
}

}  // namespace mixlab
