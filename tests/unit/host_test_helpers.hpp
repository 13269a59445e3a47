// What the end-to-end tests share: running `host` (test plugins on the path),
// a scratch folder per test process, the tiny experiment, and JSON readers.
#pragma once

#include "run_command.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace mixlab::test {

// The shell command running `host ARGS` with the test plugins (for scripts that run it in the background).
inline std::string host_command(const std::string& args) {
  return std::string(MIXLAB_HOST_EXE) + " " + args + " --plugin-path " + MIXLAB_TEST_PLUGIN_DIR;
}

inline CommandResult host(const std::string& args, int timeout_s = 0) {
  return run_command(host_command(args), timeout_s);
}

// stdout alone, for commands that print JSON (warnings go to stderr).
inline CommandResult host_stdout(const std::string& args) {
  return run_command(host_command(args), 0, /*with_stderr=*/false);
}

inline std::string tiny_experiment() { return std::string(MIXLAB_SOURCE_DIR) + "/tests/experiments/tiny.toml"; }

// A path under the temp directory, private to this test process: absent, its parent present.
inline std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("mixlab-run-" + std::to_string(getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir.parent_path());
  return dir;
}

// Data and tokenizer caches of the tests, kept apart from the user's.
inline std::string cache_args() {
  return " --set data.cache_dir=" + (std::filesystem::temp_directory_path() / "mixlab-test-cache").string();
}

inline nlohmann::json read_json(const std::filesystem::path& f) {
  std::ifstream in(f);
  return nlohmann::json::parse(in);
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& f) {
  std::vector<nlohmann::json> out;
  std::ifstream in(f);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace mixlab::test
