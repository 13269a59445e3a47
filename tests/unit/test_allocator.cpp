// util/allocator: glibc's malloc keeps a step's freed activations for the next step, unless the
// environment sets glibc's own tunables.
#include "util/allocator.hpp"

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstdlib>

namespace {

// One write a page, through volatile: a plain memset before free() is a dead store the compiler drops.
void touch(void* block, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 4096) static_cast<volatile char*>(block)[i] = 1;
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

}  // namespace

TEST_CASE("allocator: glibc's own settings in the environment are left in force and named") {
  setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", 1);
  auto settings = mixlab::keep_freed_memory();
  unsetenv("GLIBC_TUNABLES");
  CHECK(settings == "glibc, set by the environment (GLIBC_TUNABLES)");
  CHECK(mixlab::allocator_settings() == settings);
}

TEST_CASE("allocator: MIXLAB_KEEP_FREED_MEMORY=0 keeps glibc's defaults") {
  setenv("MIXLAB_KEEP_FREED_MEMORY", "0", 1);
  auto settings = mixlab::keep_freed_memory();
  unsetenv("MIXLAB_KEEP_FREED_MEMORY");
  CHECK(settings == "glibc defaults (MIXLAB_KEEP_FREED_MEMORY=0)");
}

TEST_CASE("allocator: a freed 16 MiB block is reused by the next allocation without page faults") {
  REQUIRE(mixlab::keep_freed_memory() == "glibc: mmap_threshold 32 MiB, trim_threshold 1 GiB, top_pad 256 MiB");
  CHECK(mixlab::allocator_settings() == mixlab::keep_freed_memory());
  const size_t bytes = size_t{16} << 20, pages = bytes / 4096;
  void* first = std::malloc(bytes);
  REQUIRE(first != nullptr);
  touch(first, bytes);  // the pages are faulted in once
  std::free(first);
  const long before = minor_faults();
  void* again = std::malloc(bytes);
  REQUIRE(again != nullptr);
  touch(again, bytes);
  const long faults = minor_faults() - before;
  std::free(again);
  INFO(faults << " minor page faults for " << pages << " pages");
  CHECK(faults < static_cast<long>(pages / 8));  // glibc's defaults unmap a block this size when it is freed
}
