#include "util/allocator.hpp"

#include <malloc.h>

#include <cstdlib>

namespace mixlab {
namespace {

std::string& settings() {
  static std::string value = "glibc defaults";
  return value;
}

}  // namespace

std::string keep_freed_memory() {
  if (const char* off = std::getenv("MIXLAB_KEEP_FREED_MEMORY"); off && std::string(off) == "0")
    return settings() = "glibc defaults (MIXLAB_KEEP_FREED_MEMORY=0)";
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(name)) return settings() = std::string("glibc, set by the environment (") + name + ")";
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
      mallopt(M_TOP_PAD, 256 << 20) == 1)
    settings() = "glibc: mmap_threshold 32 MiB, trim_threshold 1 GiB, top_pad 256 MiB";
  return settings();
}

std::string allocator_settings() { return settings(); }

}  // namespace mixlab
