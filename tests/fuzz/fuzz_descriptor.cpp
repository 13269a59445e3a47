// libFuzzer target: the host's validation of the descriptor a plugin's entry
// point returns (validate_library_descriptor), fed descriptors built from the
// fuzz input as a lying or broken plugin might return them. Each struct is
// allocated with exactly the size it declares, so a validation that reads a
// field beyond struct_size is an AddressSanitizer report. Every input must end
// in acceptance or a LoadError naming the file.
#include "runtime/descriptor_check.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

// Never called: the validation only checks that entry points are present.
mixlab_status* dummy_create(const mixlab_create_args*, mixlab_instance**) { return nullptr; }
void dummy_destroy(mixlab_instance*) {}

// A copy of `full` in a buffer of exactly `declared` bytes (at least the struct_size field).
template <class T>
T* with_declared_size(T full, size_t declared, std::vector<std::unique_ptr<char[]>>& keep) {
  full.struct_size = declared;
  size_t bytes = std::max(declared, sizeof(size_t));
  keep.emplace_back(new char[bytes]());
  std::memcpy(keep.back().get(), &full, std::min(bytes, sizeof(T)));
  return reinterpret_cast<T*>(keep.back().get());
}

size_t fuzzed_size(FuzzedDataProvider& in, size_t full) {
  // Mostly the real size, sometimes any size up to twice it.
  return in.ConsumeBool() ? full : in.ConsumeIntegralInRange<size_t>(0, 2 * full);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string host_tag = "torch=2.15 cxx11abi=1";
  std::vector<std::unique_ptr<char[]>> keep;
  std::vector<std::string> strings;  // owns every C string the descriptor points to
  strings.reserve(4096);
  auto text = [&](const char* usual) -> const char* {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: return nullptr;
      case 1: return usual;
      default: strings.push_back(in.ConsumeRandomLengthString(64)); return strings.back().c_str();
    }
  };

  const int32_t n_impls = in.ConsumeIntegralInRange<int32_t>(-2, 4);
  std::vector<const mixlab_impl*> impls;
  for (int32_t i = 0; i < n_impls; ++i) {
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
      impls.push_back(nullptr);
      continue;
    }
    mixlab_impl impl{};
    impl.family = in.ConsumeIntegralInRange<int32_t>(-1, 3);
    impl.name = text("prefix_mean");
    impl.impl = text("default");
    impl.version = text("1.0.0");
    impl.description = text("");
    impl.caps = in.ConsumeIntegral<uint64_t>();
    impl.causality_bound = in.ConsumeFloatingPoint<double>();
    auto maybe = [&](auto fn) { return in.ConsumeIntegralInRange<int>(0, 7) == 0 ? nullptr : fn; };
    impl.create = maybe(&dummy_create);
    impl.destroy = maybe(&dummy_destroy);
    impl.param_specs = maybe(reinterpret_cast<decltype(impl.param_specs)>(&dummy_create));
    impl.side_specs = maybe(reinterpret_cast<decltype(impl.side_specs)>(&dummy_create));
    impl.forward = maybe(reinterpret_cast<decltype(impl.forward)>(&dummy_create));
    impl.backward = maybe(reinterpret_cast<decltype(impl.backward)>(&dummy_create));
    impl.saved_release = maybe(reinterpret_cast<decltype(impl.saved_release)>(&dummy_destroy));
    impl.state_create = maybe(reinterpret_cast<decltype(impl.state_create)>(&dummy_create));
    impl.state_destroy = maybe(reinterpret_cast<decltype(impl.state_destroy)>(&dummy_destroy));
    impl.step = maybe(reinterpret_cast<decltype(impl.step)>(&dummy_create));
    impls.push_back(with_declared_size(impl, fuzzed_size(in, sizeof(mixlab_impl)), keep));
  }
  const int32_t n_checks = in.ConsumeIntegralInRange<int32_t>(-1, 3);
  std::vector<const char*> check_names;
  for (int32_t i = 0; i < n_checks; ++i) check_names.push_back(text("flash_equals_reference"));

  mixlab_library lib{};
  lib.abi_major = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegral<uint32_t>() : MIXLAB_ABI_MAJOR;
  lib.abi_minor = in.ConsumeIntegral<uint32_t>();
  lib.build_tag = text(host_tag.c_str());
  lib.n_impls = n_impls;
  lib.impls = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : impls.data();
  lib.n_checks = n_checks;
  lib.check_names = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? nullptr : check_names.data();
  lib.run_check = in.ConsumeBool() ? nullptr : reinterpret_cast<decltype(lib.run_check)>(&dummy_create);
  const mixlab_library* d =
      in.ConsumeIntegralInRange<int>(0, 31) == 0 ? nullptr : with_declared_size(lib, fuzzed_size(in, sizeof lib), keep);

  try {
    mixlab::validate_library_descriptor("fuzz.so", d, host_tag);
  } catch (const mixlab::LoadError& e) {
    if (std::string(e.what()).rfind("fuzz.so: ", 0) != 0) __builtin_trap();
    return 0;
  }
  // Accepted: everything the host reads next must be there.
  if (!d || d->n_impls < 1 || !d->impls) __builtin_trap();
  for (int32_t i = 0; i < d->n_impls; ++i)
    if (!d->impls[i] || !d->impls[i]->name || !d->impls[i]->version || !d->impls[i]->create) __builtin_trap();
  return 0;
}
