// One loaded plugin library: the dlopen handle (kept alive by shared_ptr for as
// long as any instance, decode state or autograd node uses it) and its
// validated descriptor.
#pragma once

#include "runtime/descriptor_check.hpp"

#include <mixlab/plugin.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace mixlab {

// The tag the host was built with; a plugin's must be equal.
const char* host_build_tag();

class PluginLibrary {
 public:
  // Loads and validates `file`; throws LoadError.
  static std::shared_ptr<PluginLibrary> load(const std::filesystem::path& file);

  const std::filesystem::path& path() const { return path_; }
  const mixlab_library& descriptor() const { return *descriptor_; }
  std::vector<const mixlab_impl*> impls() const;
  // SHA-256 of the file, computed on first use.
  const std::string& sha256() const;

 private:
  PluginLibrary() = default;
  std::filesystem::path path_;
  std::shared_ptr<boost::dll::shared_library> handle_;
  const mixlab_library* descriptor_ = nullptr;
  mutable std::string sha256_;
};

}  // namespace mixlab
