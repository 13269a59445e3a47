#include "runtime/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>

namespace mixlab {

std::string ImplRef::family() const { return impl->family == MIXLAB_FAMILY_MIXER ? "mixer" : "ffn"; }

std::string ImplRef::label() const {
  return std::string(impl->name) + "/" + impl->impl + "@" + version.str();
}

std::vector<std::filesystem::path> Registry::default_search_path() {
  std::vector<std::filesystem::path> path;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    path.push_back(exe.parent_path() / "plugins");
    path.push_back(exe.parent_path().parent_path() / "lib" / "mixlab" / "plugins");
  }
  if (const char* env = std::getenv("MIXLAB_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) path.emplace_back(item);
  }
  return path;
}

Registry Registry::discover() {
  Registry r;
  for (const auto& folder : default_search_path()) r.add_folder(folder);
  return r;
}

void Registry::add_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  auto canonical = std::filesystem::weakly_canonical(folder, ec);
  if (std::find(folders_.begin(), folders_.end(), canonical) != folders_.end()) return;
  folders_.push_back(canonical);
  if (!std::filesystem::is_directory(canonical, ec)) return;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(canonical, ec))
    if (entry.path().extension() == ".so") files.push_back(entry.path());
  std::sort(files.begin(), files.end());  // deterministic: the first of two duplicates wins
  // One bad library is reported and skipped; the others still load. On stderr:
  // stdout may be a command's JSON.
  for (const auto& f : files)
    if (!add_file(f)) std::cerr << "warning: skipping plugin file " << refused_.back().second << std::endl;
}

bool Registry::add_file(const std::filesystem::path& file) {
  std::error_code ec;
  auto canonical = std::filesystem::weakly_canonical(file, ec);
  for (const auto& ref : impls_)
    if (ref.library->path() == canonical) return true;  // already loaded
  try {
    auto lib = PluginLibrary::load(canonical);
    std::vector<ImplRef> found;
    for (const auto* impl : lib->impls()) {
      ImplRef ref{lib, impl, *Version::parse(impl->version)};
      for (const auto& other : impls_)
        if (other.label() == ref.label())
          throw LoadError(canonical.string() + ": " + ref.label() + " is already provided by " +
                          other.library->path().string());
      for (const auto& other : found)
        if (other.label() == ref.label()) throw LoadError(canonical.string() + ": exports " + ref.label() + " twice");
      found.push_back(ref);
    }
    impls_.insert(impls_.end(), found.begin(), found.end());
    return true;
  } catch (const LoadError& e) {
    refused_.emplace_back(canonical.string(), e.what());
    return false;
  }
}

std::optional<std::string> Registry::refusal_of(const std::string& plugin) const {
  // A refused library may not have told its names (another ABI major tells
  // none): match the file name, libNAME.so or lib<prefix>_NAME.so.
  for (const auto& [file, why] : refused_) {
    std::string stem = std::filesystem::path(file).stem().string();
    if (stem.rfind("lib", 0) == 0) stem = stem.substr(3);
    if (stem == plugin || (stem.size() > plugin.size() && stem.ends_with(plugin) &&
                           (stem[stem.size() - plugin.size() - 1] == '_' || stem[stem.size() - plugin.size() - 1] == '-')))
      return "plugin \"" + plugin + "\" was found but refused: " + why;
  }
  return std::nullopt;
}

std::string Registry::refused_list() const {
  std::string out;
  for (const auto& [file, why] : refused_) out += "\n  refused: " + why;
  return out;
}

ImplRef Registry::select(const Selector& s) const {
  if (s.version) {
    std::string bad = check_requirement(*s.version);
    if (!bad.empty()) throw SelectionError(bad);
  }
  std::vector<ImplRef> by_name, matches;
  for (const auto& ref : impls_)
    if (ref.impl->name == s.plugin) by_name.push_back(ref);
  auto describe = [](const std::vector<ImplRef>& refs) {
    std::string out;
    for (const auto& r : refs) out += "\n  " + r.label() + "  (" + r.library->path().string() + ")";
    return out;
  };
  if (by_name.empty()) {
    std::set<std::string> names;
    for (const auto& ref : impls_) names.insert(ref.impl->name);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw SelectionError(refusal_of(s.plugin).value_or("no plugin named \"" + s.plugin + "\"; available: " +
                                                        (list.empty() ? "(none)" : list) + refused_list()));
  }
  std::optional<std::string> impl = s.impl;
  if (!impl) {
    std::set<std::string> impl_names;
    for (const auto& r : by_name) impl_names.insert(r.impl->impl);
    std::set<std::string> preferred;  // ABI 1.1: MIXLAB_CAP_PREFERRED
    for (const auto& r : by_name)
      if (r.impl->caps & MIXLAB_CAP_PREFERRED) preferred.insert(r.impl->impl);
    if (impl_names.size() == 1) impl = *impl_names.begin();
    else if (preferred.size() == 1) impl = *preferred.begin();
    else if (impl_names.count("default")) impl = "default";
    else
      throw SelectionError("plugin \"" + s.plugin + "\" has several implementations; name one with impl = \"...\":" +
                           describe(by_name));
  }
  for (const auto& r : by_name)
    if (r.impl->impl == *impl && (!s.version || satisfies(r.version, *s.version))) matches.push_back(r);
  if (matches.empty())
    throw SelectionError("no implementation of \"" + s.plugin + "\" matches impl = \"" + *impl + "\"" +
                         (s.version ? ", version = \"" + *s.version + "\"" : std::string()) + "; candidates:" +
                         describe(by_name));
  std::sort(matches.begin(), matches.end(),
            [](const ImplRef& a, const ImplRef& b) { return compare(a.version, b.version) > 0; });
  return matches.front();
}

}  // namespace mixlab
