// Validation of the descriptor a plugin's entry point returns, before the host
// uses any of it: sizes before fields (a reader never reads past what the
// writer's struct_size covers), ABI major, build tag, and every
// implementation's names, family, version and required entry points. Needs
// no LibTorch, so the fuzzer links it alone (tests/fuzz/).
#pragma once

#include <mixlab/plugin.h>

#include <stdexcept>
#include <string>

namespace mixlab {

// A file that cannot be used as a plugin; the message names the file and why.
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws LoadError starting with `file` when `descriptor` (what the entry
// point returned to a host of this ABI) cannot be used by a host built with
// `host_build_tag`.
void validate_library_descriptor(const std::string& file, const mixlab_library* descriptor,
                                 const std::string& host_build_tag);

}  // namespace mixlab
