// Paths of the test plugins and bundled plugins built next to the tests.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab::test {

inline std::filesystem::path test_plugin(const std::string& name) {
  return std::filesystem::path(MIXLAB_TEST_PLUGIN_DIR) / ("libtest_" + name + ".so");
}

inline std::filesystem::path bundled_plugin(const std::string& family) {
  return std::filesystem::path(MIXLAB_PLUGIN_DIR) / ("libmixlab_" + family + ".so");
}

}  // namespace mixlab::test
