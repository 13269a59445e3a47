#include "runtime/library.hpp"

#include "runtime/descriptor_check.hpp"
#include "runtime/elf_check.hpp"
#include "runtime/host_api.hpp"
#include "util/sha256.hpp"

#include <ATen/DLConvertor.h>
#include <boost/dll/shared_library.hpp>
#include <torch/torch.h>

#include <dlfcn.h>

#define MIXLAB_STRINGIFY_(x) #x
#define MIXLAB_STRINGIFY(x) MIXLAB_STRINGIFY_(x)

namespace mixlab {

const char* host_build_tag() {
  // Must match MIXLAB_BUILD_TAG in sdk/include/mixlab/plugin.hpp.
  return "torch=" MIXLAB_STRINGIFY(TORCH_VERSION_MAJOR) "." MIXLAB_STRINGIFY(TORCH_VERSION_MINOR) " cxx11abi=" MIXLAB_STRINGIFY(_GLIBCXX_USE_CXX11_ABI);
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::filesystem::path& file) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(file, ec);
  std::string name = abs.string();
  if (!std::filesystem::is_regular_file(abs, ec)) throw LoadError(name + ": no such plugin file");

  // dlopen maps a truncated library and dies of SIGBUS when it touches the missing part.
  if (std::string problem = elf_file_problem(name); !problem.empty())
    throw LoadError(name + ": not a loadable shared library: " + problem);

  auto lib = std::shared_ptr<PluginLibrary>(new PluginLibrary());
  lib->path_ = abs;
  // RTLD_NOW: an unresolved symbol fails here, not in the middle of a run.
  // RTLD_LOCAL: two plugins never see each other's symbols.
  auto mode = static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL);
  boost::dll::fs::error_code load_ec;
  auto handle = std::make_shared<boost::dll::shared_library>(abs, mode, load_ec);
  if (load_ec) {
    const char* why = dlerror();
    throw LoadError(name + ": not a loadable shared library (" + (why ? std::string(why) : load_ec.message()) + ")");
  }
  if (!handle->has(MIXLAB_ENTRY_SYMBOL))
    throw LoadError(name + ": not a mixlab plugin: it does not export " MIXLAB_ENTRY_SYMBOL);
  auto entry = handle->get<const mixlab_library*(uint32_t, uint32_t, const mixlab_host_api*)>(MIXLAB_ENTRY_SYMBOL);
  const mixlab_library* d = entry(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR, host_api());
  validate_library_descriptor(name, d, host_build_tag());
  lib->handle_ = std::move(handle);
  lib->descriptor_ = d;
  return lib;
}

std::vector<const mixlab_impl*> PluginLibrary::impls() const {
  return std::vector<const mixlab_impl*>(descriptor_->impls, descriptor_->impls + descriptor_->n_impls);
}

const std::string& PluginLibrary::sha256() const {
  if (sha256_.empty()) sha256_ = sha256_file(path_);
  return sha256_;
}

}  // namespace mixlab
