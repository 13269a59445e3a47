// The mla plugin end to end: a latent as wide as d_model refused at the key's
// line. The numerics are the plugin's family checks (conformance.mixlab_mla).
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

const std::string kMlaSmall = std::string(MIXLAB_SOURCE_DIR) + "/experiments/mla_small.toml";

}  // namespace

TEST_CASE("bad input: an MLA latent as wide as d_model is refused at its line") {
  auto dir = scratch("mla-bad");
  std::filesystem::create_directories(dir);
  std::ifstream in(kMlaSmall);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string line = "latent_dim = 64";
  REQUIRE(text.find(line) != std::string::npos);
  text.replace(text.find(line), line.size(), "latent_dim = 192");
  int line_no = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(text.find("latent_dim = 192")), '\n'));
  auto file = dir / "wide_latent.toml";
  std::ofstream(file) << text;
  auto r = host("validate " + file.string());
  INFO(r.output);
  CHECK(r.exit_code >= 1);
  CHECK(r.exit_code <= 127);
  CHECK(r.output.find(file.string() + ":" + std::to_string(line_no) + ":") != std::string::npos);
  CHECK(r.output.find("model.templates.block.mixer.latent_dim: must be in [1, d_model) = [1, 192)") != std::string::npos);
}

TEST_CASE("mla: a short run trains, and generate continues a prompt through the latent cache") {
  auto out = scratch("mla-run");
  auto run = host("run " + kMlaSmall + " --output-dir " + out.string() + mixlab::test::cache_args() +
                  " --set training.steps=3 --set training.batch_size=2 --set validation.every=0"
                  " --set checkpoint.every=0 --set training.threads=1");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  auto m = mixlab::test::read_json(out / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(std::isfinite(m["results"]["final_train_loss"].get<double>()));
  auto gen = host("generate " + out.string() + " --prompt \"the cat\" --tokens 12 --temperature 0");
  INFO(gen.output);
  CHECK(gen.exit_code == 0);
  CHECK(gen.output.find("(decode steps)") != std::string::npos);
  CHECK(gen.output.find("the cat") != std::string::npos);
  std::filesystem::remove_all(out);
}
