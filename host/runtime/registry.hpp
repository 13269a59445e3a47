// Discovery and selection of plugin implementations.
//
// Search path, in order: the build's plugin folder (<exe dir>/plugins), the
// install prefix (<exe dir>/../lib/mixlab/plugins), every folder of
// MIXLAB_PLUGIN_PATH (':'-separated), and folders an experiment names. Every
// *.so in them is loaded and validated; a file that fails is recorded with its
// reason, reported as a warning and skipped.
#pragma once

#include "runtime/library.hpp"
#include "runtime/semver.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

// One implementation of one loaded library.
struct ImplRef {
  std::shared_ptr<PluginLibrary> library;
  const mixlab_impl* impl = nullptr;
  Version version;

  std::string family() const;
  std::string label() const;  // "name/impl@version"
};

struct Selector {
  std::string plugin;                  // required
  std::optional<std::string> impl;     // absent: the plugin's only or preferred implementation
  std::optional<std::string> version;  // a requirement such as "^1.2"
};

// A selection that matched nothing or more than one implementation.
class SelectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Registry {
 public:
  // The default search folders (see above), without experiment folders.
  static std::vector<std::filesystem::path> default_search_path();

  // Loads every plugin in the default search path.
  static Registry discover();

  void add_folder(const std::filesystem::path& folder);
  // Loads one file; returns false and records the reason if it is refused.
  bool add_file(const std::filesystem::path& file);

  const std::vector<ImplRef>& impls() const { return impls_; }
  // (file, reason) for every refused file.
  const std::vector<std::pair<std::string, std::string>>& refused() const { return refused_; }
  const std::vector<std::filesystem::path>& folders() const { return folders_; }

  // Exactly one implementation: with no impl given, a plugin with several
  // implementations picks "default" if present, else the only one; among
  // versions the highest that satisfies the requirement. Throws SelectionError
  // listing the candidates; for a plugin whose file was found but refused, the
  // reason it was refused.
  ImplRef select(const Selector& selector) const;

 private:
  std::optional<std::string> refusal_of(const std::string& plugin) const;
  std::string refused_list() const;  // "\n  refused: REASON" per refused file

  std::vector<std::filesystem::path> folders_;
  std::vector<ImplRef> impls_;
  std::vector<std::pair<std::string, std::string>> refused_;
};

}  // namespace mixlab
