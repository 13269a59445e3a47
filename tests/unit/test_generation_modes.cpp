// Execution modes of `host generate` (model/generation.hpp): with a greedy sampler
// on a random model, a reasoning mode ends exactly where the transition token is
// first sampled, or at its budget with the token inserted, and the answer mode
// continues as a plain greedy continuation of everything before it (recomputed
// from the whole context, so decode steps are checked too). Bad modes are refused
// with their file:line. Registered in `unit`.
#include "data/tokenizer.hpp"
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/generation.hpp"

#include <doctest/doctest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

const char* kModel =
    "[job]\nseed = 5\n[model]\nd_model = 32\nmax_seq_len = 64\ninit_std = 0.5\n[model.templates.t]\n"
    "mixer = { plugin = \"attention\", n_heads = 2 }\nffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 48 }\n"
    "[[model.schedule]]\ntemplate = \"t\"\nrepeat = 2\n[data]\nsource = \"builtin:grammar\"\nseq_len = 32\n"
    "[training]\nsteps = 1\n";

fs::path write_experiment(const std::string& name, const std::string& extra) {
  const fs::path dir = mixlab::test::scratch("modes-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "e.toml") << kModel << extra;
  return dir / "e.toml";
}

// The naive greedy continuation: the whole context through forward, argmax, n times.
std::vector<int32_t> greedy(mixlab::Model& model, std::vector<int32_t> context, int64_t n) {
  torch::NoGradGuard no_grad;
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    auto t = torch::tensor(std::vector<int64_t>(context.begin(), context.end()), torch::kInt64).unsqueeze(0);
    auto next = static_cast<int32_t>(model.forward(t, false, 0).logits[0][-1].argmax().item<int64_t>());
    out.push_back(next);
    context.push_back(next);
  }
  return out;
}

std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t begin, size_t end) {
  return {v.begin() + static_cast<long>(begin), v.begin() + static_cast<long>(end)};
}

std::string problems_of(const std::string& name, const std::string& extra) {
  try {
    mixlab::load_experiment(write_experiment(name, extra));
  } catch (const mixlab::ExperimentError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("execution modes: the switch happens at the transition token and at the budget, greedy throughout") {
  auto config = mixlab::load_experiment(write_experiment("switch", ""));
  auto registry = mixlab::experiment_registry(config);
  torch::manual_seed(0);
  mixlab::Model model(config, registry, 256, torch::kCPU);
  REQUIRE(model.can_decode());
  auto tok = mixlab::data::make_byte_tokenizer();
  const std::vector<int32_t> prompt = tok->encode("the cat");
  const auto g = greedy(model, prompt, 16);  // init_std 0.5: a random model whose greedy tokens vary
  INFO("greedy: ", torch::tensor(std::vector<int64_t>(g.begin(), g.end())));

  mixlab::ExperimentConfig::ExecutionMode reason, answer;
  reason.temperature = 0.0;
  reason.transition.to = "answer";
  reason.transition.budget_exhausted = true;
  answer.temperature = 0.0;
  answer.budget = 4;
  mixlab::SampleOptions o;
  o.tokens = 99;  // every mode here has a budget

  SUBCASE("sampled transition token") {
    // The first greedy token that did not occur before it (from the third on) ends the reasoning.
    size_t j = 2;
    while (j < 10 && std::find(g.begin(), g.begin() + static_cast<long>(j), g[j]) != g.begin() + static_cast<long>(j)) ++j;
    REQUIRE(j < 10);
    reason.budget = 12;
    reason.transition.special_token = std::string(1, static_cast<char>(g[j]));
    config.execution_modes = {{"reason", reason}, {"answer", answer}};
    auto parts = mixlab::generate(model, *tok, config, prompt, "reason", o);
    REQUIRE(parts.size() == 2);
    CHECK(parts[0].mode == "reason");
    CHECK(parts[0].ids == slice(g, 0, j));
    CHECK(parts[0].ended_by == "special_token");
    CHECK(parts[0].transition_token == reason.transition.special_token);
    CHECK(parts[1].mode == "answer");
    CHECK(parts[1].ids == slice(g, j + 1, j + 5));  // the sampled token stays in the context
    CHECK(parts[1].ended_by == "budget");
  }
  SUBCASE("budget exhausted: the token is inserted") {
    reason.budget = 3;
    int32_t t = 0;  // a byte the first three greedy tokens do not contain
    while (std::find(g.begin(), g.begin() + 3, t) != g.begin() + 3) ++t;
    reason.transition.special_token = std::string(1, static_cast<char>(t));
    config.execution_modes = {{"reason", reason}, {"answer", answer}};
    auto parts = mixlab::generate(model, *tok, config, prompt, "reason", o);
    REQUIRE(parts.size() == 2);
    CHECK(parts[0].ids == slice(g, 0, 3));
    CHECK(parts[0].ended_by == "budget_exhausted");
    auto context = prompt;
    context.insert(context.end(), g.begin(), g.begin() + 3);
    context.push_back(t);
    CHECK(parts[1].ids == greedy(model, context, 4));

    // Without budget_exhausted the budget ends the generation.
    config.execution_modes["reason"].transition.budget_exhausted = false;
    parts = mixlab::generate(model, *tok, config, prompt, "reason", o);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].ids == slice(g, 0, 3));
    CHECK(parts[0].ended_by == "budget");

    // --temperature on the command line wins over the modes' (here: a very hot reasoning mode).
    config.execution_modes["reason"].temperature = 50.0;
    o.temperature = 0.0;
    o.temperature_given = true;
    parts = mixlab::generate(model, *tok, config, prompt, "reason", o);
    CHECK(parts[0].ids == slice(g, 0, 3));
  }
  SUBCASE("answer mode alone, a plain generation, an unknown mode") {
    reason.budget = 3;
    reason.transition.special_token = "\x1e";
    config.execution_modes = {{"reason", reason}, {"answer", answer}};
    auto parts = mixlab::generate(model, *tok, config, prompt, "answer", o);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].ids == slice(g, 0, 4));
    o.tokens = 6;
    o.temperature = 0.0;
    parts = mixlab::generate(model, *tok, config, prompt, "", o);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].mode.empty());
    CHECK(parts[0].ids == slice(g, 0, 6));
    CHECK_THROWS_WITH(mixlab::generate(model, *tok, config, prompt, "think", o),
                      doctest::Contains("no such execution mode; the experiment declares: answer, reason"));
  }
}

TEST_CASE("execution modes: bad modes and transition tokens outside the vocabulary, with file:line") {
  const std::string modes =
      "[execution_modes.reason]\nbudget = 8\ntemperature = 0.6\n"
      "transition = { to = \"answer\", special_token = \"</think>\", budget_exhausted = true }\n"
      "[execution_modes.answer]\ntemperature = 0.0\n";
  auto msg = problems_of("multi-byte", modes);
  INFO(msg);
  CHECK(msg.find("e.toml:21:47: execution_modes.reason.transition.special_token: \"</think>\" is 8 bytes, not one "
                 "piece of the byte vocabulary") != std::string::npos);

  // One byte is one piece; the resolved config carries the modes.
  const std::string good =
      "[execution_modes.reason]\nbudget = 8\ntemperature = 0.6\n"
      "transition = { to = \"answer\", special_token = \"\\u001e\", budget_exhausted = true }\n"
      "[execution_modes.answer]\ntemperature = 0.0\n";
  auto config = mixlab::load_experiment(write_experiment("good", good));
  CHECK(config.execution_modes.at("reason").transition.special_token == "\x1e");
  CHECK(config.to_json()["execution_modes"]["reason"]["transition"]["to"] == "answer");
  mixlab::require_transition_tokens(config, *mixlab::data::make_byte_tokenizer());
  // Tokenizers known only at run time are asked then: the ids vocabulary of probe tasks reads decimal ids.
  try {
    mixlab::require_transition_tokens(config, *mixlab::data::make_id_tokenizer(16));
    FAIL("expected an ExperimentError");
  } catch (const mixlab::ExperimentError& e) {
    CHECK(std::string(e.what()).find("e.toml:21:47: execution_modes.reason.transition.special_token") != std::string::npos);
    CHECK(std::string(e.what()).find("a transition token must be a single vocabulary piece") != std::string::npos);
  }

  struct Case {
    std::string extra, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"[execution_modes.reason]\ntransition = { to = \"answr\", special_token = \"x\" }\n[execution_modes.answer]\n",
            "execution_modes.reason.transition.to: no mode named \"answr\" (did you mean \"answer\"?); declared: answer, reason"},
           {"[execution_modes.a]\ntransition = { to = \"b\", special_token = \"x\" }\n"
            "[execution_modes.b]\ntransition = { to = \"a\", special_token = \"y\" }\n",
            "the transitions from \"a\" come back to \"a\""},
           {"[execution_modes.reason]\ntransition = { to = \"answer\", special_token = \"x\", budget_exhausted = true }\n"
            "[execution_modes.answer]\n",
            "e.toml:19:14: execution_modes.reason.transition.budget_exhausted: needs the mode's budget"},
           {"[execution_modes.reason]\nbudgt = 3\n", "execution_modes.reason.budgt: unknown key (did you mean \"budget\"?)"},
           {"[execution_modes.reason]\ntemperature = -1.0\n", "e.toml:19:15: execution_modes.reason.temperature: expected a number >= 0"},
           {"[execution_modes.reason]\ntransition = { to = \"answer\" }\n[execution_modes.answer]\n",
            "execution_modes.reason.transition.special_token: is required"},
           {"[execution_mode.reason]\nbudget = 3\n", "execution_mode: unknown section (did you mean \"execution_modes\"?)"},
       }) {
    auto m = problems_of("bad", c.extra);
    INFO(c.extra, "\n", m);
    CHECK(m.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("execution modes: host generate --mode reason --json reports both parts") {
  using mixlab::test::host;
  const auto run_dir = mixlab::test::scratch("modes-run");
  auto r = host("run " + mixlab::test::tiny_experiment() + mixlab::test::cache_args() +
                " --set training.steps=4 --set validation.every=0 --set validation.batches=1 --set checkpoint.every=0"
                " --output-dir " + run_dir.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // The run's experiment gains two modes: a 6-token thinking budget ending in a newline, then greedy answers.
  {
    std::ofstream(run_dir / "experiment.toml", std::ios::app)
        << "\n[execution_modes.reason]\nbudget = 6\ntemperature = 0.0\n"
           "transition = { to = \"answer\", special_token = \"\\u001e\", budget_exhausted = true }\n"
           "[execution_modes.answer]\ntemperature = 0.0\n";
  }
  auto g = mixlab::test::host_stdout("generate " + run_dir.string() + " --prompt 'the ' --mode reason --tokens 5 --json");
  INFO(g.output);
  REQUIRE(g.exit_code == 0);
  auto out = nlohmann::json::parse(g.output);
  CHECK(out["prompt"] == "the ");
  REQUIRE(out["parts"].size() == 2);
  CHECK(out["parts"][0]["mode"] == "reason");
  CHECK(out["parts"][0]["tokens"] == 6);  // a byte model of grammar text never samples \x1e greedily
  CHECK(out["parts"][0]["ended_by"] == "budget_exhausted");
  CHECK(out["parts"][0]["transition_token"] == "\x1e");
  CHECK(out["parts"][1]["mode"] == "answer");
  CHECK(out["parts"][1]["tokens"] == 5);
  CHECK(out["parts"][1]["ended_by"] == "budget");
  auto unknown = host("generate " + run_dir.string() + " --mode think");
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.output.find("--mode think: no such execution mode; the experiment declares: answer, reason") !=
        std::string::npos);
}
