// The titans plugin end to end: a memory type the walkthrough names but mixlab
// does not implement is refused at the key's line; a short run trains and
// generate continues a prompt through the memory state. The numerics are the
// plugin's family checks (conformance.mixlab_titans).
#include "decode_run_check.hpp"
#include "host_test_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

using mixlab::test::host;
using mixlab::test::scratch;

namespace {

const std::string kTitansSmall = std::string(MIXLAB_SOURCE_DIR) + "/experiments/titans_small.toml";

}  // namespace

TEST_CASE("bad input: a Titans memory_type that is not implemented is refused at its line") {
  auto dir = scratch("titans-bad");
  std::filesystem::create_directories(dir);
  std::ifstream in(kTitansSmall);
  const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string line = "memory_type = \"neural_memory\"";
  REQUIRE(original.find(line) != std::string::npos);
  for (const std::string type : {"associative", "retrieval"}) {
    std::string text = original;
    const std::string bad = "memory_type = \"" + type + "\"";
    text.replace(text.find(line), line.size(), bad);
    const auto at = static_cast<long>(text.find(bad));
    const int line_no = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    auto file = dir / (type + ".toml");
    std::ofstream(file) << text;
    auto r = host("validate " + file.string());
    INFO(r.output);
    CHECK(r.exit_code >= 1);
    CHECK(r.exit_code <= 127);
    CHECK(r.output.find(file.string() + ":" + std::to_string(line_no) + ":") != std::string::npos);
    CHECK(r.output.find("model.templates.block.mixer.memory_type: \"" + type +
                        "\" is named by the architecture walkthrough but not implemented") != std::string::npos);
  }
}

TEST_CASE("titans: a short run trains, and generate continues a prompt through the memory state") {
  mixlab::test::check_trains_and_decodes(kTitansSmall, "titans-run");
}
