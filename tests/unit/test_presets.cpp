// The architecture presets (experiments/arch: the ~1-2B arch_* designs;
// experiments/mini: the arch_expert_*_mini designs): every file names itself
// consistently, explain puts it at its intended size (1e9..2e9 total for an arch
// preset, within 15% of job.target_params for a mini), and it trains for two
// steps at a reduced size with its layer schedule intact.
//
// The reduced run changes only sizes and data, through --set: d_model 64,
// max_seq_len 64, byte tokens from builtin:grammar, 2 steps of 2 x 32 tokens on
// the CPU in float32, every explicit FFN `hidden` / MoE `expert_hidden` set
// to 128 / 64 (at d_model 64 the full widths would make a 32-layer MoE preset a
// few hundred million parameters) and every MLA `latent_dim` / `q_latent_dim`
// to 32 / 48 (a latent must be narrower than d_model). Templates, schedules, repeat counts, mixer
// kinds, heads, windows, RoPE settings, expert counts and top-k stay as written.
// Registered as its own ctest entry (`presets`), excluded from `unit`.
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> presets_in(const std::string& folder) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(MIXLAB_SOURCE_DIR) / "experiments" / folder;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".toml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::scratch;

// The overrides that shrink a preset to a two-step CPU run.
std::string reduced_run_args(const mixlab::ExperimentConfig& c, const fs::path& out) {
  std::string args =
      " --set model.d_model=64 --set model.max_seq_len=64"
      " --set data.source=builtin:grammar --set data.seq_len=32"
      " --set tokenizer.kind=byte --set tokenizer.vocab_size=0"
      " --set training.steps=2 --set training.batch_size=2 --set training.grad_accum_steps=1"
      " --set training.threads=1 --set training.device=cpu --set training.dtype=float32"
      " --set lr_scheduler.warmup_steps=0 --set validation.every=0 --set validation.batches=1"
      " --set checkpoint.every=0 --set metrics.log_every=1" +
      cache_args() + " --set job.output_dir=" + out.string();
  for (const auto& [name, t] : c.model.templates) {
    const std::string ffn = " --set model.templates." + name + ".ffn.";
    if (t.ffn.config.contains("hidden")) args += ffn + "hidden=128";
    if (t.ffn.config.contains("expert_hidden")) args += ffn + "expert_hidden=64";
    const std::string mixer = " --set model.templates." + name + ".mixer.";
    if (t.mixer.config.contains("latent_dim")) args += mixer + "latent_dim=32";
    if (t.mixer.config.contains("q_latent_dim")) args += mixer + "q_latent_dim=48";
  }
  return args;
}

void check_preset(const fs::path& file, bool mini) {
  INFO(file.string());
  const auto c = mixlab::load_experiment(file);

  // Names: <order>_<job.name>.toml; a level and references from the seed.
  const std::string stem = file.stem().string();
  REQUIRE(stem.find('_') != std::string::npos);
  CHECK(stem.substr(stem.find('_') + 1) == c.job.name);
  CHECK(c.job.name.rfind("arch_", 0) == 0);
  CHECK(mini == (c.job.name.size() > 5 && c.job.name.compare(c.job.name.size() - 5, 5, "_mini") == 0));
  if (mini) CHECK(c.job.level == "expert");
  else CHECK_FALSE(c.job.level.empty());
  CHECK_FALSE(c.job.references.empty());
  CHECK_FALSE(c.job.description.empty());
  CHECK(c.job.target_params > 0);
  if (mini) CHECK(c.model.dropout == doctest::Approx(0.1));

  // Size at full scale (explain counts the embeddings without training the tokenizer).
  auto explain = mixlab::test::host_stdout("explain " + file.string() + " --json");
  INFO(explain.output);
  REQUIRE(explain.exit_code == 0);
  const auto e = nlohmann::json::parse(explain.output);
  const double total = e["params_total"].get<double>(), active = e["params_active"].get<double>();
  CHECK(active <= total);
  if (mini) {
    const double target = static_cast<double>(c.job.target_params);
    CHECK_MESSAGE(std::abs(total - target) <= 0.15 * target, "total ", total, " vs target ", target);
  } else {
    CHECK_MESSAGE(total >= 1e9, "total ", total);
    CHECK_MESSAGE(total <= 2e9, "total ", total);
    CHECK(c.job.target_params >= 1'000'000'000);
    CHECK(c.job.target_params <= 2'000'000'000);
  }

  // Two training steps at a reduced size, same layer schedule.
  const auto out = scratch(stem);
  auto run = host("run " + file.string() + reduced_run_args(c, out));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const auto m = read_json(out / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(m["results"]["steps"] == 2);
  const double train_loss = m["results"]["final_train_loss"].get<double>();
  const double val_loss = m["results"]["final_val_loss"].get<double>();
  CHECK(std::isfinite(train_loss));
  CHECK(std::isfinite(val_loss));
  CHECK(train_loss > 0);
  CHECK(m["layers"].size() == c.layers().size());
  fs::remove_all(out);
}

}  // namespace

TEST_SUITE("presets") {
  TEST_CASE("presets: every arch_* preset is 1-2B parameters and trains at a reduced size") {
    const auto files = presets_in("arch");
    REQUIRE(files.size() == 22);  // the walkthrough's 22
    for (const auto& f : files) check_preset(f, false);
  }

  TEST_CASE("presets: every arch_expert_*_mini preset is within 15% of its target and trains at a reduced size") {
    const auto files = presets_in("mini");
    REQUIRE(files.size() >= 6);
    for (const auto& f : files) check_preset(f, true);
  }

  TEST_CASE("presets: host presets lists them in order; --table, show and an unknown name") {
    auto list = mixlab::test::host_stdout("presets --json");
    INFO(list.output);
    REQUIRE(list.exit_code == 0);
    auto presets = nlohmann::json::parse(list.output);
    REQUIRE(presets.size() == presets_in("arch").size() + presets_in("mini").size());
    // The arch presets in walkthrough order, then the minis in the seed's recommended order.
    CHECK(presets[0]["name"] == "arch_beginner_gpt2");
    const std::vector<std::string> minis{"arch_expert_progressive_stack_mini", "arch_expert_blackmamba_moe_mini",
                                         "arch_expert_mixtral_moe_mini",       "arch_expert_dilated_longnet_mini",
                                         "arch_expert_deepseek_moe_mini",      "arch_expert_frontier_full_moe_mini"};
    for (size_t i = 0; i < minis.size(); ++i) CHECK(presets[presets.size() - minis.size() + i]["name"] == minis[i]);
    for (const auto& p : presets) {
      CHECK_FALSE(p["mixers"].empty());
      CHECK(p["params_active"].get<double>() <= p["params_total"].get<double>());
    }
    auto mixtral = std::find_if(presets.begin(), presets.end(),
                                [](const nlohmann::json& p) { return p["name"] == "arch_expert_mixtral_moe_mini"; });
    CHECK((*mixtral)["moe"].get<std::string>().find("on 12/12 layers") != std::string::npos);

    auto table = mixlab::test::host_stdout("presets --table");
    REQUIRE(table.exit_code == 0);
    CHECK(std::count(table.output.begin(), table.output.end(), '\n') == static_cast<long>(presets.size()) + 2);

    auto show = host("presets show arch_expert_blackmamba_moe_mini");
    INFO(show.output);
    REQUIRE(show.exit_code == 0);
    CHECK(show.output.find("references:") != std::string::npos);
    CHECK(show.output.find("parameters:") != std::string::npos);

    auto unknown = host("presets show arch_nonexistent");
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.output.find("known: arch_beginner_gpt2") != std::string::npos);
  }
}
