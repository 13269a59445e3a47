// Experiment files: every kind of mistake gives file:line:column, the field and
// what is allowed; --set overrides are typed like the file.
#include "experiment/loader.hpp"
#include "experiment/schema.hpp"
#include "runtime/registry.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace mixlab;

namespace {

std::filesystem::path write_experiment(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("mixlab-exp-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / (name + ".toml");
  std::ofstream(file) << text;
  return file;
}

const char* kValid = R"([job]
name = "x"
[model]
d_model = 16
max_seq_len = 32
[model.templates.a]
mixer = { plugin = "prefix_mean", scale = 1.0 }
ffn = { plugin = "mlp" }
[[model.schedule]]
template = "a"
repeat = 3
[data]
source = "builtin:grammar"
seq_len = 16
[training]
steps = 10
)";

std::string problems(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    load_experiment(write_experiment("t", text), sets);
  } catch (const ExperimentError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("experiment: a valid file loads with defaults and overrides") {
  auto c = load_experiment(write_experiment("ok", kValid), {"training.steps=25", "model.templates.a.mixer.scale=2.5",
                                                            "data.source=builtin:kjv", "model.schedule.0.repeat=2"});
  CHECK(c.training.steps == 25);
  CHECK(c.data.source == "builtin:kjv");
  CHECK(c.model.norm == "rmsnorm");
  CHECK(c.layers().size() == 2);
  CHECK(c.layers()[0].mixer.config["scale"].get<double>() == 2.5);
  CHECK(c.to_json()["optimizer"]["betas"][1].get<double>() == 0.95);
}

TEST_CASE("experiment: invalid files give positioned, specific messages") {
  struct Case {
    std::string edit_from, edit_to, expected;
  };
  std::vector<Case> cases{
      {"d_model = 16", "d_model = -3", ".toml:4:11: model.d_model: expected an integer in 1 .. 65536, got -3"},
      {"d_model = 16", "d_modle = 16", "model.d_modle: unknown key (did you mean \"d_model\"?)"},
      {"[training]", "[trainng]", "trainng: unknown section (did you mean \"training\"?)"},
      {"steps = 10", "steps = \"ten\"", "training.steps: expected an integer in 1 .. 1000000000, got \"ten\""},
      {"template = \"a\"", "template = \"b\"", "no template named \"b\""},
      {"seq_len = 16", "seq_len = 64", "data.seq_len: seq_len 64 exceeds model.max_seq_len 32"},
      {"[job]", "[job]\nnorm = 1", "job.norm: unknown key"},
      {"max_seq_len = 32", "max_seq_len = 32\nnorm = \"batchnorm\"", "model.norm: expected one of rmsnorm | layernorm"},
      {"name = \"x\"", "name = \"x", "syntax: invalid TOML"},
      {"steps = 10", "", "training.steps: is required"},
  };
  for (const auto& c : cases) {
    std::string text = kValid;
    auto at = text.find(c.edit_from);
    REQUIRE(at != std::string::npos);
    text.replace(at, c.edit_from.size(), c.edit_to);
    auto msg = problems(text);
    INFO(c.expected, " in:\n", msg);
    CHECK(msg.find(c.expected) != std::string::npos);
  }
  CHECK(problems(kValid, {"training.steps=0"}).find("--set training.steps=0: training.steps: expected an integer in 1 .. 1000000000, got 0") != std::string::npos);
  CHECK(problems(kValid, {"nonsense"}).find("expected key=value") != std::string::npos);
  CHECK_THROWS_WITH_AS(load_experiment("/no/such/file.toml"), doctest::Contains("no such experiment file"),
                       ExperimentError);
}

TEST_CASE("experiment: several problems are all reported") {
  std::string text = kValid;
  text.replace(text.find("d_model = 16"), 12, "d_model = 0");
  text.replace(text.find("steps = 10"), 10, "steps = -1");
  auto msg = problems(text);
  CHECK(msg.find("2 problems") != std::string::npos);
}

TEST_CASE("experiment: the schema reference in docs/experiments.md is current") {
  std::ifstream in(std::string(MIXLAB_SOURCE_DIR) + "/docs/experiments.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_MESSAGE(doc.find(schema_markdown()) != std::string::npos,
                "regenerate the key reference with `build/host schema` and paste it into docs/experiments.md");
}

TEST_CASE("experiment: a plugin's config error points at the key's line") {
  auto file = write_experiment("plugin", std::string(kValid).replace(std::string(kValid).find("scale = 1.0"), 11, "scale = -1.0"));
  auto config = load_experiment(file);
  mixlab::Registry registry;
  registry.add_folder(MIXLAB_TEST_PLUGIN_DIR);
  registry.add_folder(MIXLAB_PLUGIN_DIR);
  auto problems = check_plugins(config, registry);
  REQUIRE(problems.size() == 1);
  INFO(problems[0].str());
  CHECK(problems[0].str().find(".toml:7:43: model.templates.a.mixer.scale: must be > 0") != std::string::npos);
}

TEST_CASE("experiment: moe capacity_order is one of token | choice and needs capacity_factor") {
  mixlab::Registry registry;
  registry.add_folder(MIXLAB_TEST_PLUGIN_DIR);
  registry.add_folder(MIXLAB_PLUGIN_DIR);
  auto problems_with = [&](const std::string& ffn) {
    std::string text(kValid);
    text.replace(text.find("ffn = { plugin = \"mlp\" }"), 24, ffn);
    std::string all;
    for (const auto& p : check_plugins(load_experiment(write_experiment("moe", text)), registry)) all += p.str() + "\n";
    return all;
  };
  CHECK(problems_with(R"(ffn = { plugin = "moe", capacity_factor = 1.0, capacity_order = "choice" })") == "");
  auto bad_value = problems_with(R"(ffn = { plugin = "moe", capacity_factor = 1.0, capacity_order = "gshard" })");
  INFO(bad_value);
  CHECK(bad_value.find(".toml:8:65: model.templates.a.ffn.capacity_order: must be one of {token, choice}, got \"gshard\"") !=
        std::string::npos);
  auto no_capacity = problems_with(R"(ffn = { plugin = "moe", capacity_order = "choice" })");
  INFO(no_capacity);
  CHECK(no_capacity.find(".toml:8:42: model.templates.a.ffn.capacity_order: only orders the capacity limit") !=
        std::string::npos);
}
