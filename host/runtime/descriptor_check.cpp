#include "runtime/descriptor_check.hpp"

#include "runtime/semver.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string_view>

namespace mixlab {
namespace {

constexpr int32_t kMaxEntries = 4096;  // implementations or checks per library: far more than any real one

bool is_plain_name(std::string_view name) {
  return name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

// `text` with control and non-ASCII bytes as \xNN, cut at 128 characters, for a message.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 128)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) out += c;
    else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

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
  for (const char* name : {impl->name, impl->impl})
    if (!is_plain_name(name))
      throw LoadError(where + ": name \"" + printable(name) + "\" may hold only letters, digits, '_', '-' and '.' "
                              "(experiment files and messages quote it)");
  where = file + ": " + impl->name + "/" + impl->impl;
  if (impl->family != MIXLAB_FAMILY_MIXER && impl->family != MIXLAB_FAMILY_FFN)
    throw LoadError(where + ": unknown family " + std::to_string(impl->family));
  if (!impl->version || !Version::parse(impl->version))
    throw LoadError(where + ": version \"" + printable(impl->version ? impl->version : "") +
                    "\" is not a semantic version MAJOR.MINOR.PATCH");
  if (!impl->create || !impl->destroy || !impl->param_specs || !impl->side_specs || !impl->forward ||
      !impl->backward || !impl->saved_release)
    throw LoadError(where + ": a required entry point (create, destroy, param_specs, side_specs, forward, "
                            "backward, saved_release) is null");
  if ((impl->caps & MIXLAB_CAP_DECODE) && (!impl->state_create || !impl->state_destroy || !impl->step))
    throw LoadError(where + ": declares decode but state_create, state_destroy or step is null");
}

}  // namespace

void validate_library_descriptor(const std::string& name, const mixlab_library* d, const std::string& host_tag) {
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
  if (tag != host_tag)
    throw LoadError(name + ": built for \"" + printable(tag) + "\", host is \"" + host_tag +
                    "\": rebuild the plugin against this host's LibTorch");
  if (d->n_impls < 1 || !d->impls) throw LoadError(name + ": exports no implementation");
  if (d->n_impls > kMaxEntries || d->n_checks > kMaxEntries)
    throw LoadError(name + ": declares " + std::to_string(d->n_impls) + " implementations and " +
                    std::to_string(d->n_checks) + " checks, more than the " + std::to_string(kMaxEntries) + " a library may have");
  for (int i = 0; i < d->n_impls; ++i) validate_impl(name, d->impls[i], i);
  if (d->n_checks > 0 && (!d->check_names || !d->run_check))
    throw LoadError(name + ": declares checks but check_names or run_check is null");
  for (int i = 0; i < d->n_checks; ++i) {
    std::string check = d->check_names[i] ? d->check_names[i] : "";
    if (check.empty() || check.find_first_of(", \t\n") != std::string::npos)
      throw LoadError(name + ": check name \"" + printable(check) + "\" must be non-empty without spaces or commas");
  }
}

}  // namespace mixlab
