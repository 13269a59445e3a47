// The conformance runner passes a correct plugin and fails each deliberately
// broken one in the right check, surviving crashes and hangs.
#include "run_command.hpp"
#include "test_plugin_files.hpp"

#include <doctest/doctest.h>

#include <string>

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

TEST_CASE("conformance: a hang is killed after the time limit") {
  auto r = conformance("hang", "--only shapes_and_dtypes,handshake --timeout 8");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(has(r, "FAIL  shapes_and_dtypes"));
  CHECK(has(r, "hung: no result after 8 s"));
  CHECK(has(r, "PASS  handshake"));
}

TEST_CASE("conformance: NaN outputs fail; extra exports fail binary hygiene") {
  auto nan = conformance("nan_output", "--only finite_outputs");
  CHECK(nan.exit_code == 1);
  CHECK(has(nan, "FAIL  finite_outputs"));
  auto leaky = conformance("leaky_exports", "--only binary_hygiene");
  INFO(leaky.output);
  CHECK(leaky.exit_code == 1);
  CHECK(has(leaky, "FAIL  binary_hygiene"));
  CHECK(has(leaky, "symbols exported besides mixlab_plugin_entry"));
}

TEST_CASE("conformance: a refused plugin file is an error, not a crash") {
  auto r = conformance("wrong_abi");
  CHECK(r.exit_code == 2);
  CHECK(has(r, "plugin ABI 2.0, host ABI 1.1"));
}
