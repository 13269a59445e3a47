// The SDK's entry point (MIXLAB_PLUGIN) is pure: called from many threads at
// once, by hosts of this and of another ABI major, every answer is immutable
// and an earlier answer is never changed by a later call.
#include "runtime/host_api.hpp"
#include "runtime/library.hpp"
#include "test_plugin_files.hpp"

#include <doctest/doctest.h>

#include <dlfcn.h>

#include <string>
#include <thread>
#include <vector>

using namespace mixlab;

TEST_CASE("sdk: the entry point answers every thread and ABI version without changing earlier answers") {
  for (const auto& file : {test::test_plugin("prefix_mean"), test::bundled_plugin("retnet")}) {
    CAPTURE(file);
    auto lib = PluginLibrary::load(file);  // holds the descriptor of the first answer
    const mixlab_library& held = lib->descriptor();
    const mixlab_library before = held;
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);  // the same loaded copy
    REQUIRE(handle);
    auto entry = reinterpret_cast<mixlab_plugin_entry_fn>(dlsym(handle, MIXLAB_ENTRY_SYMBOL));
    REQUIRE((entry != nullptr));  // (parenthesised: doctest cannot print a function pointer)

    constexpr int kThreads = 8, kCalls = 2000;
    std::vector<std::vector<const mixlab_library*>> answers(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kCalls; ++i) {
          bool same_major = (i + t) % 2 == 0;
          answers[t].push_back(same_major ? entry(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR, host_api())
                                          : entry(MIXLAB_ABI_MAJOR + 1, 0, nullptr));
        }
      });
    for (auto& t : threads) t.join();

    // The descriptor the host held all along is unchanged.
    CHECK(held.n_impls == before.n_impls);
    CHECK(held.n_impls >= 1);
    CHECK(held.impls == before.impls);
    CHECK(held.n_checks == before.n_checks);
    CHECK(held.check_names == before.check_names);
    CHECK((held.run_check == before.run_check));
    CHECK(std::string(held.impls[0]->name) == std::string(before.impls[0]->name));
    // Same major: the held descriptor itself; another major: version fields only.
    for (int t = 0; t < kThreads; ++t)
      for (int i = 0; i < kCalls; ++i) {
        const mixlab_library* a = answers[t][i];
        REQUIRE(a);
        if ((i + t) % 2 == 0) {
          CHECK(a == &held);
        } else {
          CHECK(a != &held);
          CHECK(a->abi_major == MIXLAB_ABI_MAJOR);
          CHECK(a->n_impls == 0);
          CHECK(a->n_checks == 0);
        }
      }
    dlclose(handle);
  }
}
