// The conformance runner passes a correct plugin and fails each deliberately
// broken one in the right check, surviving crashes and hangs.
#include "run_command.hpp"
#include "test_plugin_files.hpp"

#include <doctest/doctest.h>
#include <torch/cuda.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace {

using Run = mixlab::test::CommandResult;

Run conformance(const std::string& plugin, const std::string& extra = "") {
  return mixlab::test::run_command(std::string(MIXLAB_HOST_EXE) + " conformance " +
                                   mixlab::test::test_plugin(plugin).string() + " " + extra);
}

bool has(const Run& r, const std::string& text) { return r.output.find(text) != std::string::npos; }

}  // namespace

TEST_CASE("conformance: a correct plugin passes every check") {
  auto r = conformance("prefix_mean");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(has(r, "0 failed"));
  CHECK(has(r, "PASS  causality"));
  CHECK(has(r, "PASS  gradients_fd"));
}

TEST_CASE("conformance: --device puts the checks' tensors there; cuda without a GPU is a clear error") {
  auto r = conformance("prefix_mean", "--device cpu --only shapes_and_dtypes,causality,gradients_fd");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(has(r, "device cpu"));
  CHECK(has(r, "3 passed, 0 failed"));
  if (!torch::cuda::is_available()) {
    auto cuda = conformance("prefix_mean", "--device cuda");
    INFO(cuda.output);
    CHECK(cuda.exit_code == 2);
    CHECK(has(cuda, "error: --device cuda: LibTorch"));
    CHECK(has(cuda, "sees no CUDA device"));
  }
  auto bad = conformance("prefix_mean", "--device tpu");
  INFO(bad.output);
  CHECK(bad.exit_code > 0);
  CHECK(bad.exit_code < 128);
  CHECK(has(bad, "--device"));
}

TEST_CASE("conformance: a non-causal mixer fails causality") {
  auto r = conformance("noncausal", "--only causality,shapes_and_dtypes");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(has(r, "FAIL  causality"));
  CHECK(has(r, "PASS  shapes_and_dtypes"));
}

TEST_CASE("conformance: a wrong backward fails the finite-difference check") {
  auto r = conformance("wrong_backward", "--only gradients_fd");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(has(r, "FAIL  gradients_fd"));
}

TEST_CASE("conformance: a segfault fails the check it happens in, and the suite goes on") {
  auto r = conformance("segfault", "--only handshake,shapes_and_dtypes,causality,two_threads");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(has(r, "FAIL  shapes_and_dtypes"));
  CHECK(has(r, "died in this check: killed by signal 11"));
  CHECK(has(r, "PASS  handshake"));
  CHECK(has(r, "PASS  causality"));
  CHECK(has(r, "PASS  two_threads"));
}

TEST_CASE("conformance: a hang costs one time limit per implementation; the other checks are not waited for") {
  auto r = conformance("hang", "--only handshake,shapes_and_dtypes,causality,two_threads --timeout 8");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(has(r, "PASS  handshake"));
  CHECK(has(r, "FAIL  shapes_and_dtypes"));
  CHECK(has(r, "hung: no result after 8 s"));
  CHECK(has(r, "FAIL  causality"));
  CHECK(has(r, "FAIL  two_threads"));
  CHECK(has(r, "not run: shapes_and_dtypes hung in this implementation"));
  CHECK(has(r, "1 passed, 3 failed"));
}

TEST_CASE("conformance: NaN outputs fail every comparison with a message, and every verdict is reported") {
  auto junit = std::filesystem::temp_directory_path() / ("mixlab-nan-junit-" + std::to_string(getpid()) + ".xml");
  auto r = conformance("nan_output", "--only finite_outputs,gradients_fd,batch_independence,two_threads,causality"
                                     " --junit " + junit.string());
  INFO(r.output);
  CHECK(r.exit_code == 1);
  for (const char* check : {"finite_outputs", "gradients_fd", "batch_independence", "two_threads", "causality"})
    CHECK(has(r, std::string("FAIL  ") + check));
  CHECK(has(r, "NaN or infinity in the compared values"));
  CHECK(has(r, "0 passed, 5 failed"));
  std::ifstream in(junit);
  std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(xml.find("failures=\"5\"") != std::string::npos);
  std::filesystem::remove(junit);
}

TEST_CASE("conformance: SIGTERM writes the verdicts so far to JUnit and exits 3") {
  auto dir = std::filesystem::temp_directory_path() / ("mixlab-conf-term-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto log = dir / "log.txt", junit = dir / "junit.xml";
  // handshake passes, then shapes_and_dtypes hangs; the verdict of handshake is
  // printed as it arrives, and SIGTERM comes after it.
  auto r = mixlab::test::run_command(
      std::string(MIXLAB_HOST_EXE) + " conformance " + mixlab::test::test_plugin("hang").string() +
      " --only handshake,shapes_and_dtypes --timeout 300 --junit " + junit.string() + " >" + log.string() +
      " 2>&1 & pid=$!; for i in $(seq 1 600); do grep -q 'PASS  handshake' " + log.string() +
      " && break; sleep 0.1; done; kill -TERM $pid; wait $pid; echo \"exit=$?\"");
  std::ifstream in_log(log);
  std::string output((std::istreambuf_iterator<char>(in_log)), std::istreambuf_iterator<char>());
  INFO(output);
  CHECK(has(r, "exit=3"));
  CHECK(output.find("interrupted by Terminated") != std::string::npos);
  std::ifstream in(junit);
  std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(xml.find("name=\"handshake\"") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("conformance: a refused plugin file is an error, not a crash") {
  auto r = conformance("wrong_abi");
  CHECK(r.exit_code == 2);
  CHECK(has(r, "plugin ABI 2.0, host ABI 1.2"));
}
