// `host probe` end to end (host/train/probe.cpp): a tiny probe of a test mixer,
// an interrupted probe resumed with its completed cells reused, and the refusal
// of a bad --mixer and of a mixer that fails the conformance checks.
#include <doctest/doctest.h>

#include "host_test_helpers.hpp"
#include "train/probe_plan.hpp"

#include <sys/stat.h>

#include <algorithm>

using namespace mixlab::test;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The tiny scale: one level of in-context recall at 6 steps, prefix_mean from the test plugins.
std::string tiny_probe(const std::filesystem::path& dir, const std::string& extra = "") {
  return "probe --mixer prefix_mean --tasks recall --levels 1 --steps 6 --lr 0.01 --output-dir " + dir.string() +
         " " + extra;
}

}  // namespace

TEST_SUITE("probe") {
  TEST_CASE("probe: a tiny probe trains every cell and writes probe.json, probe.md and probe.png") {
    auto dir = scratch("probe-tiny");
    auto r = host(tiny_probe(dir, "--seeds 2"), 300);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.output, "conformance of prefix_mean"));
    CHECK(contains(r.output, "[2/2] prefix_mean recall (base) lr 0.01 wd 0 seed 1: completed, accuracy"));
    auto p = read_json(dir / "probe.json");
    REQUIRE(p["cells"].size() == 2);
    for (const auto& c : p["cells"]) {
      CHECK(c["status"] == "completed");
      CHECK(c["accuracy"].get<double>() >= 0.0);
      CHECK(c["accuracy"].get<double>() <= 1.0);
      CHECK(c["key"]["steps"] == 6);
    }
    REQUIRE(p["settings"].size() == 1);
    const auto& best = p["settings"][0]["best"];
    CHECK(best["n"] == 2);
    const double a = p["cells"][0]["accuracy"], b = p["cells"][1]["accuracy"];
    CHECK(best["mean"].get<double>() == doctest::Approx((a + b) / 2));
    CHECK(best["std"].get<double>() == doctest::Approx(std::abs(a - b) / std::sqrt(2.0)));
    CHECK(p["scores"]["prefix_mean"]["recall"].get<double>() == doctest::Approx(best["mean"].get<double>()));
    // Each cell is an ordinary run folder of the standard probe model at its settings.
    auto m = read_json(dir / "cells/prefix_mean/recall/base/lr0.01-wd0/seed-0/run/manifest.json");
    CHECK(m["status"] == "completed");
    CHECK(m["config"]["data"]["source"] == "builtin:recall");
    CHECK(m["config"]["model"]["d_model"] == 64);
    CHECK(m["config"]["training"]["steps"] == 6);
    std::ifstream md(dir / "probe.md");
    std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    CHECK(contains(text, "| recall, base |"));
    CHECK(contains(text, "| task, level | prefix_mean |"));
    CHECK(std::filesystem::file_size(dir / "probe.png") > 1000);

    // Run again: every cell is reused, nothing trains.
    auto again = host(tiny_probe(dir, "--seeds 2"), 120);
    INFO(again.output);
    CHECK(again.exit_code == 0);
    CHECK(contains(again.output, "[1/2] prefix_mean recall (base) lr 0.01 wd 0 seed 0: completed, accuracy"));
    CHECK(contains(again.output, "(reused)"));
    CHECK_FALSE(contains(again.output, "conformance of"));  // passed before: remembered
    // Other settings in the same folder are refused, not mixed in.
    auto other = host("probe --mixer prefix_mean --tasks recall --levels 1 --steps 7 --lr 0.01 --output-dir " + dir.string(), 120);
    CHECK(other.exit_code == 1);
    CHECK(contains(other.output, "holds a cell run with other settings"));
  }

  TEST_CASE("probe: an interrupted probe continues where it stopped and reuses its completed cells") {
    auto dir = scratch("probe-resume");
    const auto first = dir / "cells/prefix_mean/recall/base/lr0.01-wd0/seed-0/result.json";
    // SIGTERM as soon as the first cell is done: the probe stops during or before the second.
    auto r = run_command("sh -c '" + host_command(tiny_probe(dir, "--seeds 3")) + " > " + (dir.string() + ".log") +
                             " 2>&1 & pid=$!; for i in $(seq 3000); do [ -f " + first.string() +
                             " ] && break; sleep 0.1; done; kill -TERM $pid; wait $pid; echo exit=$?'",
                         300);
    INFO(r.output);
    REQUIRE(std::filesystem::exists(first));
    CHECK_FALSE(std::filesystem::exists(dir / "probe.json"));
    CHECK_FALSE(contains(r.output, "exit=0"));
    struct stat before{};
    REQUIRE(stat(first.c_str(), &before) == 0);

    auto resumed = host(tiny_probe(dir, "--seeds 3"), 300);
    INFO(resumed.output);
    CHECK(resumed.exit_code == 0);
    CHECK(contains(resumed.output, "[1/3] prefix_mean recall (base) lr 0.01 wd 0 seed 0: completed, accuracy"));
    CHECK(contains(resumed.output, "(reused)"));
    struct stat after{};
    REQUIRE(stat(first.c_str(), &after) == 0);
    CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);  // not retrained
    CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    auto p = read_json(dir / "probe.json");
    CHECK(p["cells"].size() == 3);
    for (const auto& c : p["cells"]) CHECK(c["status"] == "completed");
  }

  TEST_CASE("probe: mla, whose latent_dim is required, runs in the standard model at a quarter of each width") {
    auto dir = scratch("probe-mla");
    auto r = host("probe --mixer mla --suite mqar --levels 1 --widths 32 --widths 64 --steps 2 --lr 0.003 --output-dir " +
                      dir.string(),
                  300);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.output, "conformance of mla"));
    for (int width : {32, 64}) {
      CAPTURE(width);
      auto m = read_json(dir / ("cells/mla/mqar/len-64--kv-4/width-" + std::to_string(width) +
                                "/lr0.003-wd0/seed-0/run/manifest.json"));
      CHECK(m["status"] == "completed");
      CHECK(m["config"]["model"]["d_model"] == width);
      CHECK(m["config"]["model"]["templates"]["block"]["mixer"]["latent_dim"] == width / 4);
      CHECK(m["config"]["model"]["templates"]["block"]["ffn"] == "none");  // MQAR: the mixer alone
      CHECK(m["config"]["training"]["batch_size"] == 64);
    }
    std::ifstream md(dir / "probe.md");
    std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    CHECK(contains(text, "steps x batch per cell: mqar 2 x 64."));
  }

  TEST_CASE("probe: zoology's attention (experiments/probe_attention_zoology.toml) is probed as it is, at each width") {
    auto dir = scratch("probe-zoology");
    const std::string file = std::string(MIXLAB_SOURCE_DIR) + "/experiments/probe_attention_zoology.toml";
    auto r = host("probe --experiment " + file + " --suite mqar --levels 1 --widths 32 --steps 2 --lr 0.003 --output-dir " +
                      dir.string(),
                  300);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    auto m = read_json(dir / "cells/probe_attention_zoology/mqar/len-64--kv-4/width-32/lr0.003-wd0/seed-0/run/manifest.json");
    CHECK(m["status"] == "completed");
    const auto& model = m["config"]["model"];
    CHECK(model["d_model"] == 32);
    CHECK(model["positional"] == "learned");
    CHECK(model["templates"]["block"]["ffn"] == "none");
    CHECK(model["templates"]["block"]["mixer"]["partial_rotary_factor"] == 0.0);
  }

  TEST_CASE("probe: the MQAR plan is zoology's sweep, at the CPU scale with the same tokens per step at every length") {
    for (bool full : {false, true}) {
      CAPTURE(full);
      const mixlab::ProbeScale scale = mixlab::probe_scale(full);
      REQUIRE(scale.mqar.size() == 1);
      const auto& task = scale.mqar[0];
      CHECK(task.mixer_only);
      CHECK(task.width_sweep);
      REQUIRE(task.levels.size() == 3);
      for (const auto& level : task.levels) {
        const auto length = static_cast<int64_t>(level.options.at("input_seq_len"));
        CHECK(level.options.at("num_kv_pairs") * 16 == length);
        CHECK(level.options.at("random_non_queries") == 0);
        CHECK(level.options.at("train_examples") == 100000);
        // zoology: batch 512 up to T 128, then 256; the CPU scale: 4,096 tokens per step.
        CHECK(scale.batch_for(level) == (full ? (length <= 128 ? 512 : 256) : 4096 / length));
      }
      // The CPU scale's MQAR steps are its own; --full trains 64 epochs of 100,000 examples.
      CHECK(scale.steps_for(task, task.levels[0]) == (full ? 64 * ((100000 + 511) / 512) : 1000));
      CHECK(scale.steps_for(scale.mad[0], scale.mad[0].levels[0]) == (full ? 200 * 100 : 600));
      CHECK(task.weight_decays == std::vector<double>{full ? 0.01 : 0.0});
    }
  }

  TEST_CASE("probe: compression is in the MAD suite at MAD's levels, its cells read out by the autoencoder") {
    for (bool full : {false, true}) {
      CAPTURE(full);
      const mixlab::ProbeScale scale = mixlab::probe_scale(full);
      const auto task = std::find_if(scale.mad.begin(), scale.mad.end(), [](const auto& t) { return t.name == "compression"; });
      REQUIRE(task != scale.mad.end());
      CHECK(task->source == "builtin:compression");
      CHECK(task->readout == "autoencoder");
      for (const auto& other : scale.mad) CHECK((other.name == "compression") == (other.readout == "autoencoder"));
      // MAD's baseline (mad-lab configs/tasks/compression.yml), then each knob moved alone.
      CHECK(task->levels[0].options.at("vocab_size") == 16);
      CHECK(task->levels[0].options.at("input_seq_len") == 32);
      std::vector<std::string> labels;
      for (const auto& level : task->levels) labels.push_back(level.label);
      if (full)
        CHECK(labels == std::vector<std::string>{"base", "vocab 32", "vocab 64", "vocab 128", "len 64", "len 128", "len 256",
                                                 "examples 6400", "examples 3200", "examples 1600", "examples 800"});
      else
        CHECK(labels == std::vector<std::string>{"base", "vocab 32", "len 64"});
    }

    auto dir = scratch("probe-compression");
    auto r = host("probe --mixer prefix_mean --tasks compression --levels 1 --steps 6 --lr 0.01 --output-dir " + dir.string(), 300);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.output, "[1/1] prefix_mean compression (base) lr 0.01 wd 0 seed 0: completed, accuracy"));
    auto m = read_json(dir / "cells/prefix_mean/compression/base/lr0.01-wd0/seed-0/run/manifest.json");
    CHECK(m["config"]["model"]["readout"] == "autoencoder");
    CHECK(m["config"]["data"]["source"] == "builtin:compression");
    CHECK(m["config"]["data"]["seq_len"] == 32);
    std::ifstream md(dir / "probe.md");
    std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    CHECK(contains(text, "| compression, base |"));
    CHECK_FALSE(contains(text, "Not run"));
  }

  TEST_CASE("probe: a bad --mixer, a mixer failing conformance and a wrong --tasks are refused before training") {
    auto dir = scratch("probe-refused");
    auto unknown = host("probe --mixer atention --output-dir " + dir.string(), 60);
    INFO(unknown.output);
    CHECK(unknown.exit_code == 1);
    CHECK(contains(unknown.output, "--mixer atention"));
    CHECK(contains(unknown.output, "attention"));  // the candidates are listed

    auto ffn = host("probe --mixer mlp --output-dir " + dir.string(), 60);
    CHECK(ffn.exit_code == 1);
    CHECK(contains(ffn.output, "not a sequence mixer"));

    // noncausal (tests/plugins/noncausal.cpp) looks ahead: it would read the answers off the input.
    auto cheat = host("probe --mixer noncausal --tasks recall --levels 1 --steps 2 --output-dir " + dir.string(), 300);
    INFO(cheat.output);
    CHECK(cheat.exit_code == 1);
    CHECK(contains(cheat.output, "causality"));
    CHECK(contains(cheat.output, "failed the conformance checks above"));
    CHECK_FALSE(std::filesystem::exists(dir / "cells"));

    auto task = host("probe --mixer prefix_mean --tasks recal --output-dir " + dir.string(), 60);
    CHECK(task.exit_code == 1);
    CHECK(contains(task.output, "did you mean 'recall'"));

    auto both = host("probe --output-dir " + dir.string(), 60);
    CHECK(both.exit_code == 1);
    CHECK(contains(both.output, "give --mixer"));
  }
}
