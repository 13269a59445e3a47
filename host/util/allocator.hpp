// glibc's malloc set for a training loop. Every step allocates and frees the same large
// activations and gradients; with glibc's defaults the largest go back to the kernel when freed
// (their own mmap, or a trimmed heap top), and the next step page-faults them in again. Holding
// them made a d_model 512 Llama step 1.08-1.10x faster in bfloat16 and 1.03-1.05x in float32 on
// 2 cores (bench/README.md).
#pragma once

#include <string>

namespace mixlab {

// Keeps freed memory for reuse: blocks up to 32 MiB from the heap (M_MMAP_THRESHOLD), up to
// 1 GiB of free heap top kept (M_TRIM_THRESHOLD), the heap grown 256 MiB at a time (M_TOP_PAD,
// address space only). Left to the user when the environment sets glibc's own MALLOC_*_ or
// GLIBC_TUNABLES (setting any of those thresholds also turns off glibc's dynamic one), and
// off with MIXLAB_KEEP_FREED_MEMORY=0, which keeps glibc's defaults (the A/B of bench/README.md).
// Returns what is in force, as allocator_settings() does.
std::string keep_freed_memory();

// What the manifest records: the settings above, "glibc defaults" if keep_freed_memory() never
// ran, or which variable of the environment decided.
std::string allocator_settings();

}  // namespace mixlab
