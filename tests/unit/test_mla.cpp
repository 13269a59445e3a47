// The mla plugin end to end: the ABI 1.2 cost fields it fills (and never
// writes past an older host's struct), explain's KV-cache comparison with
// multi-head attention and GQA, a latent as wide as d_model refused at the
// key's line, and a short run that generates through the latent cache. The numerics are the plugin's family checks (conformance.mixlab_mla).
#include "decode_run_check.hpp"
#include "host_test_helpers.hpp"
#include "runtime/host_api.hpp"

#include <doctest/doctest.h>
#include <mixlab/plugin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <iterator>

using mixlab::test::host;
using mixlab::test::host_stdout;
using mixlab::test::scratch;

namespace {

const std::string kMlaSmall = std::string(MIXLAB_SOURCE_DIR) + "/experiments/mla_small.toml";

}  // namespace

TEST_CASE("ABI 1.2: mla's cost names its same-shape attention for a 1.2 host and writes nothing past a 1.1 struct") {
  auto path = std::filesystem::path(MIXLAB_PLUGIN_DIR) / "libmixlab_mla.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(handle != nullptr);
  auto entry = reinterpret_cast<mixlab_plugin_entry_fn>(dlsym(handle, MIXLAB_ENTRY_SYMBOL));
  REQUIRE(static_cast<bool>(entry));
  const mixlab_library* lib = entry(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR, mixlab::host_api());
  REQUIRE(lib->n_impls == 2);
  for (int i = 0; i < lib->n_impls; ++i) {
    const mixlab_impl* impl = lib->impls[i];
    INFO(impl->impl);
    // 4 heads of d_n 16 + d_r 8 keys and d_v 12 values; latent 24.
    mixlab_create_args args{sizeof(mixlab_create_args), 64, 32,
                            R"({"n_heads": 4, "latent_dim": 24, "nope_head_dim": 16, "rope_head_dim": 8, "v_head_dim": 12})"};
    mixlab_instance* inst = nullptr;
    REQUIRE(impl->create(&args, &inst) == nullptr);

    mixlab_cost full{};
    full.struct_size = sizeof(full);
    REQUIRE(impl->cost(inst, 10, 2, &full) == nullptr);
    CHECK(full.state_bytes == (24 + 8) * 10 * 2);
    CHECK(full.state_grows == 1);
    CHECK(full.kv_head_bytes_per_token == (16 + 8 + 12) * 2);
    CHECK(full.attention_heads == 4);

    // A 1.1 host's struct ends at state_grows: the bytes after it stay as they were.
    mixlab_cost old{};
    std::memset(&old, 0xAB, sizeof(old));
    old.struct_size = MIXLAB_STRUCT_SIZE(mixlab_cost, state_grows);
    REQUIRE(impl->cost(inst, 10, 2, &old) == nullptr);
    CHECK(old.state_bytes == full.state_bytes);
    mixlab_cost untouched{};
    std::memset(&untouched, 0xAB, sizeof(untouched));
    CHECK(std::memcmp(&old.kv_head_bytes_per_token, &untouched.kv_head_bytes_per_token,
                      sizeof(old) - offsetof(mixlab_cost, kv_head_bytes_per_token)) == 0);
    impl->destroy(inst);
  }
  // dlclose is skipped: the library may still be held by other tests' registries.
}

TEST_CASE("explain: MLA's KV cache per token against multi-head attention and GQA of the same shape") {
  auto r = host_stdout("explain " + kMlaSmall + " --json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto report = nlohmann::json::parse(r.output);
  REQUIRE(report["layers"].size() == 4);
  for (const auto& row : report["layers"]) {
    // 6 heads, latent 64 + rope 16 cached; MHA keeps 6 x (32 + 16 + 32) values; bf16.
    const auto& kv = row["kv_cache"];
    CHECK(kv["bytes_per_token"].get<double>() == (64 + 16) * 2);
    CHECK(kv["mha_bytes_per_token"].get<double>() == 6 * (32 + 16 + 32) * 2);
    CHECK(kv["mha_heads"].get<int>() == 6);
    CHECK(kv["gqa_kv_heads_same_bytes"].get<double>() == doctest::Approx(1.0));
  }
  auto text = host("explain " + kMlaSmall);
  CHECK(text.output.find("KV cache per token and layer (bf16), mla/absorbed@1.0.0 (4 layers): 160 B, against 960 B for "
                         "multi-head attention of the same shape (6 kv heads; 6.0x less): as much as GQA with 1.00 kv "
                         "heads") != std::string::npos);
  // Plain attention names its own shape too: quickstart's 6 heads of 32 on 2 kv heads keep a third of MHA's cache.
  auto gqa = host_stdout("explain " + std::string(MIXLAB_SOURCE_DIR) + "/experiments/quickstart.toml --json" +
                         " --set model.templates.block.mixer.n_kv_heads=2");
  INFO(gqa.output);
  REQUIRE(gqa.exit_code == 0);
  const auto gqa_report = nlohmann::json::parse(gqa.output);
  const auto& kv = gqa_report["layers"][0]["kv_cache"];
  CHECK(kv["bytes_per_token"].get<double>() == 2 * 2 * 32 * 2);
  CHECK(kv["mha_bytes_per_token"].get<double>() == 6 * 2 * 32 * 2);
  CHECK(kv["gqa_kv_heads_same_bytes"].get<double>() == doctest::Approx(2.0));
}

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
  mixlab::test::check_trains_and_decodes(kMlaSmall, "mla-run");
}
