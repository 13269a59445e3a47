// The study commands end to end: `host compile` writes an initialised model,
// `host compare` runs experiments x seeds and summarises them, `host analyze`
// counts MoE routing per layer, class and prompt label; and the per-token
// statistic they rest on is hidden from a host older than ABI 1.1.
#include "host_test_helpers.hpp"
#include "model/safetensors.hpp"
#include "runtime/host_api.hpp"
#include "train/comparison.hpp"

#include <doctest/doctest.h>
#include <mixlab/plugin.h>

#include <dlfcn.h>

#include <cmath>

using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::scratch;
using mixlab::test::tiny_experiment;

namespace {

// The tiny experiment with a 4-expert top-2 MoE FFN in every layer.
std::string tiny_moe_args() {
  return " --set 'model.templates.block.ffn={plugin=\"moe\", impl=\"sparse\", experts=4, top_k=2, expert_hidden=32}'" + cache_args();
}

double sum(const nlohmann::json& values) {
  double s = 0;
  for (const auto& v : values) s += v.get<double>();
  return s;
}

}  // namespace

TEST_CASE("spread and compare_means: sample std and the two-standard-error rule") {
  auto s = mixlab::spread({1.0, 2.0, 3.0, 4.0});
  CHECK(s.mean == doctest::Approx(2.5));
  CHECK(s.std == doctest::Approx(std::sqrt(5.0 / 3.0)));
  CHECK(mixlab::spread({7.0}).std == 0.0);
  mixlab::Spread a{10.0, 1.0, 3}, close{11.0, 1.0, 3}, far{13.0, 1.0, 3};
  // 2 SE = 2 sqrt(1/3 + 1/3) = 1.633
  CHECK(mixlab::compare_means(a, close)["within_spread"] == true);
  CHECK(mixlab::compare_means(a, far)["within_spread"] == false);
  CHECK(mixlab::compare_means(a, far)["two_standard_errors"].get<double>() == doctest::Approx(2 * std::sqrt(2.0 / 3.0)));
  CHECK(mixlab::compare_means(a, far)["relative"].get<double>() == doctest::Approx(0.3));
}

TEST_CASE("compile: an initialised model, its config and explain report, written atomically") {
  auto dir = scratch("compiled");
  auto r = host("compile " + tiny_experiment() + " --output-dir " + dir.string() + cache_args());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* f : {"model.safetensors", "config.json", "experiment.toml", "overrides.json", "explain.json", "explain.txt"})
    CHECK(std::filesystem::exists(dir / f));
  CHECK_FALSE(std::filesystem::exists(dir.string() + ".tmp"));
  auto weights = mixlab::load_safetensors(dir / "model.safetensors");
  int64_t total = 0;
  for (const auto& [name, t] : weights.tensors) total += t.numel();
  CHECK(static_cast<double>(total) == read_json(dir / "explain.json")["params_total"].get<double>());
  CHECK(weights.tensors.front().first.rfind("embed", 0) == 0);

  auto again = host("compile " + tiny_experiment() + " --output-dir " + dir.string() + cache_args());
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("exists") != std::string::npos);
}

TEST_CASE("compare: experiments x seeds, mean and std from the runs, differences against the spread") {
  auto dir = scratch("compare");
  auto moe_file = scratch("compare-input") / "tiny_moe.toml";
  std::filesystem::create_directories(moe_file.parent_path());
  std::filesystem::copy_file(tiny_experiment(), moe_file);
  auto r = host("compare " + tiny_experiment() + " " + moe_file.string() +
                " --seeds 2 --first-seed 5 --set training.steps=6 --set validation.every=0 --set checkpoint.every=0"
                " --set 'model.templates.block.ffn={plugin=\"mlp\", hidden=48}' --output-dir " + dir.string() +
                cache_args());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto c = read_json(dir / "comparison.json");
  CHECK(c["seeds"] == nlohmann::json({5, 6}));
  REQUIRE(c["experiments"].size() == 2);
  for (const auto& e : c["experiments"]) {
    REQUIRE(e["runs"].size() == 2);
    std::vector<double> ppl;
    for (const auto& run : e["runs"]) {
      CHECK(run["status"] == "completed");
      auto m = read_json(std::filesystem::path(run["run_dir"].get<std::string>()) / "manifest.json");
      CHECK(m["seed"] == run["seed"]);
      CHECK(m["results"]["final_val_ppl"].get<double>() == run["final_val_ppl"].get<double>());
      ppl.push_back(run["final_val_ppl"]);
    }
    auto s = mixlab::spread(ppl);
    CHECK(e["summary"]["final_val_ppl"]["mean"].get<double>() == doctest::Approx(s.mean));
    CHECK(e["summary"]["final_val_ppl"]["std"].get<double>() == doctest::Approx(s.std));
  }
  // Same config under another name: each seed gives bit-identical runs, so the difference is 0.
  const auto& vs = c["experiments"][1]["vs_baseline"]["final_val_ppl"];
  CHECK(vs["difference"].get<double>() == 0.0);
  CHECK(vs["within_spread"] == true);
  CHECK(std::filesystem::exists(dir / "comparison.md"));

  // A second call reuses the completed runs.
  auto again = host("compare " + tiny_experiment() + " " + moe_file.string() +
                    " --seeds 2 --first-seed 5 --set training.steps=6 --set validation.every=0 --set checkpoint.every=0"
                    " --set 'model.templates.block.ffn={plugin=\"mlp\", hidden=48}' --output-dir " + dir.string() +
                    cache_args());
  CHECK(again.exit_code == 0);
  CHECK(again.output.find("== ") == std::string::npos);
}

TEST_CASE("analyze: routing per layer, per token class and per prompt label; clear errors") {
  auto run_dir = scratch("moe-run");
  auto r = host("run " + tiny_experiment() + " --output-dir " + run_dir.string() + " --set training.steps=10" +
                tiny_moe_args());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  auto prompts = scratch("prompts") / "prompts.tsv";
  std::filesystem::create_directories(prompts.parent_path());
  std::ofstream(prompts) << "# label<TAB>text\nquestion\tDoes the cat like apples?\n\nstatement\tThe dog runs.\n"
                            "question\tDid they eat?\n";
  auto out = scratch("analysis");
  auto a = host("analyze " + run_dir.string() + " --batches 2 --prompts " + prompts.string() + " --output-dir " +
                out.string());
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  for (const char* f : {"routing.json", "routing-by-layer.csv", "routing-by-class.csv", "routing-by-label.csv",
                        "routing-analysis.png", "expert-by-class.png"})
    CHECK(std::filesystem::exists(out / f));
  auto report = read_json(out / "routing.json");
  CHECK(report["tokens"] == 2 * 8 * 32);  // 2 batches of the run's 8 x 32
  CHECK(report["top_k"] == 2);
  REQUIRE(report["layers"].size() == 2);
  for (const auto& l : report["layers"]) {
    CHECK(l["token_share"].size() == 4);
    CHECK(sum(l["token_share"]) == doctest::Approx(1.0));
    CHECK(sum(l["gate_weight_share"]) == doctest::Approx(1.0));
  }
  int64_t class_tokens = 0;
  for (const auto& c : report["by_class"]["classes"]) {
    class_tokens += c["tokens"].get<int64_t>();
    if (c["tokens"].get<int64_t>() > 0) CHECK(sum(c["share"]) == doctest::Approx(1.0));
  }
  CHECK(class_tokens > 2 * 8 * 31 * 9 / 10);  // every input token but the first of a row has a class (bar a few)
  double mi = report["by_class"]["class_expert_information_fraction"];
  CHECK(mi >= 0.0);
  CHECK(mi <= 1.0);
  auto labels = report["by_label"]["labels"];
  REQUIRE(labels.size() == 2);
  CHECK(labels[0]["label"] == "question");
  CHECK(labels[0]["tokens"] == std::string("Does the cat like apples?Did they eat?").size());  // bytes
  CHECK(sum(labels[1]["share"]) == doctest::Approx(1.0));

  std::ofstream(prompts) << "question\tfine\nno tab on this line\n";
  auto bad = host("analyze " + run_dir.string() + " --prompts " + prompts.string() + " --output-dir " + out.string());
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find(prompts.string() + ":2: expected label<TAB>text") != std::string::npos);

  auto dense_dir = scratch("dense-run");
  REQUIRE(host("run " + tiny_experiment() + " --output-dir " + dense_dir.string() + " --set training.steps=2" +
               cache_args()).exit_code == 0);
  auto none = host("analyze " + dense_dir.string());
  CHECK(none.exit_code == 1);
  CHECK(none.output.find("no layer reports per-token routing") != std::string::npos);
}

TEST_CASE("ABI 1.1: a host of minor 0 never sees the per-token statistic; minor 1 does") {
  auto path = std::filesystem::path(MIXLAB_PLUGIN_DIR) / "libmixlab_moe.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(handle != nullptr);
  auto entry = reinterpret_cast<mixlab_plugin_entry_fn>(dlsym(handle, MIXLAB_ENTRY_SYMBOL));
  REQUIRE(static_cast<bool>(entry));
  auto side_names = [&](uint32_t minor) {
    const mixlab_library* lib = entry(MIXLAB_ABI_MAJOR, minor, mixlab::host_api());
    const mixlab_impl* impl = nullptr;
    for (int i = 0; i < lib->n_impls; ++i)
      if (std::string(lib->impls[i]->name) == "moe") impl = lib->impls[i];
    REQUIRE(impl != nullptr);
    mixlab_create_args args{sizeof(mixlab_create_args), 16, 32, "{}"};
    mixlab_instance* inst = nullptr;
    REQUIRE(impl->create(&args, &inst) == nullptr);
    const mixlab_side_spec* specs = nullptr;
    int32_t n = 0;
    REQUIRE(impl->side_specs(inst, &specs, &n) == nullptr);
    std::vector<std::string> names;
    for (int32_t i = 0; i < n; ++i) names.push_back(std::string(specs[i].name) + ":" + std::to_string(specs[i].kind));
    impl->destroy(inst);
    return names;
  };
  auto old_host = side_names(0);
  auto new_host = side_names(MIXLAB_ABI_MINOR);
  CHECK(std::find(old_host.begin(), old_host.end(), "expert_weights:3") == old_host.end());
  CHECK(std::find(new_host.begin(), new_host.end(), "expert_weights:3") != new_host.end());
  CHECK(new_host.size() == old_host.size() + 1);
  // dlclose is skipped: the library may still be held by other tests' registries.
}
