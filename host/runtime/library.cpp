#include "runtime/library.hpp"

#include "runtime/host_api.hpp"
#include "runtime/semver.hpp"
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

namespace {

std::string abi_string(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

void validate_impl(const std::string& file, const mixlab_impl* impl, int index) {
  std::string where = file + ": implementation #" + std::to_string(index);
  if (!impl) throw LoadError(where + " is null");
  if (impl->struct_size < MIXLAB_STRUCT_SIZE(mixlab_impl, cost))
    throw LoadError(where + ": descriptor is " + std::to_string(impl->struct_size) + " bytes, ABI " +
                    abi_string(MIXLAB_ABI_MAJOR, 0) + " needs at least " +
                    std::to_string(MIXLAB_STRUCT_SIZE(mixlab_impl, cost)));
  if (!impl->name || !*impl->name || !impl->impl || !*impl->impl)
    throw LoadError(where + ": empty plugin or implementation name");
  where = file + ": " + impl->name + "/" + impl->impl;
  if (impl->family != MIXLAB_FAMILY_MIXER && impl->family != MIXLAB_FAMILY_FFN)
    throw LoadError(where + ": unknown family " + std::to_string(impl->family));
  if (!impl->version || !Version::parse(impl->version))
    throw LoadError(where + ": version \"" + std::string(impl->version ? impl->version : "") +
                    "\" is not a semantic version MAJOR.MINOR.PATCH");
  if (!impl->create || !impl->destroy || !impl->param_specs || !impl->side_specs || !impl->forward ||
      !impl->backward || !impl->saved_release)
    throw LoadError(where + ": a required entry point (create, destroy, param_specs, side_specs, forward, "
                            "backward, saved_release) is null");
  if ((impl->caps & MIXLAB_CAP_DECODE) && (!impl->state_create || !impl->state_destroy || !impl->step))
    throw LoadError(where + ": declares decode but state_create, state_destroy or step is null");
}

}  // namespace

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::filesystem::path& file) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(file, ec);
  std::string name = abs.string();
  if (!std::filesystem::is_regular_file(abs, ec)) throw LoadError(name + ": no such plugin file");

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
  if (!d) throw LoadError(name + ": " MIXLAB_ENTRY_SYMBOL " returned no descriptor");
  if (d->struct_size < MIXLAB_STRUCT_SIZE(mixlab_library, abi_minor))
    throw LoadError(name + ": descriptor too small to carry an ABI version");
  if (d->abi_major != MIXLAB_ABI_MAJOR)
    throw LoadError(name + ": plugin ABI " + abi_string(d->abi_major, d->abi_minor) + ", host ABI " +
                    abi_string(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR) + ": major versions must match; rebuild the plugin "
                    "against this host's SDK");
  if (d->struct_size < MIXLAB_STRUCT_SIZE(mixlab_library, run_check))
    throw LoadError(name + ": library descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " +
                    abi_string(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR) + " needs " +
                    std::to_string(MIXLAB_STRUCT_SIZE(mixlab_library, run_check)));
  std::string tag = d->build_tag ? d->build_tag : "";
  if (tag != host_build_tag())
    throw LoadError(name + ": built for \"" + tag + "\", host is \"" + host_build_tag() +
                    "\": rebuild the plugin against this host's LibTorch");
  if (d->n_impls < 1) throw LoadError(name + ": exports no implementation");
  for (int i = 0; i < d->n_impls; ++i) validate_impl(name, d->impls[i], i);
  if (d->n_checks > 0 && (!d->check_names || !d->run_check))
    throw LoadError(name + ": declares checks but check_names or run_check is null");
  for (int i = 0; i < d->n_checks; ++i) {
    std::string check = d->check_names[i] ? d->check_names[i] : "";
    if (check.empty() || check.find_first_of(", \t\n") != std::string::npos)
      throw LoadError(name + ": check name \"" + check + "\" must be non-empty without spaces or commas");
  }
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
