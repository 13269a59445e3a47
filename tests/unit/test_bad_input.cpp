// Bad input end to end through `host`: every refusal is an exit code in 1..127
// with a message naming the file or --set it concerns, never a hang, a signal,
// or a library's own wording; nothing the user made is touched.
#include "host_test_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>

using mixlab::test::cache_args;
using mixlab::test::CommandResult;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::scratch;

namespace {

std::string tiny() { return mixlab::test::tiny_experiment(); }

// What no message may contain: the raw text of the libraries underneath.
const std::vector<std::string> kLibraryText{"stoul", "stoi", "stoll", "map::at", "std::bad_alloc", "bad_alloc",
                                           "filesystem error", "[json.exception", "terminate called", "what():",
                                           "Exception raised from", "vector::_M", "basic_string"};

// A refusal: an exit code below 128 (no signal), the expected text, no library text.
void check_refused(const CommandResult& r, const std::string& expected) {
  INFO("expected \"", expected, "\" in:\n", r.output);
  CHECK(r.exit_code >= 1);
  CHECK(r.exit_code <= 127);
  CHECK(r.output.find(expected) != std::string::npos);
  for (const auto& raw : kLibraryText) CHECK_MESSAGE(r.output.find(raw) == std::string::npos, "library text: ", raw);
}

void write(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

}  // namespace

TEST_SUITE("bad_input") {

TEST_CASE("bad input: training memory is estimated, and what cannot fit is refused before allocating") {
  auto r = mixlab::test::host_stdout("explain " + tiny() + " --json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto report = nlohmann::json::parse(r.output);
  const auto& m = report["training_memory"];
  // The documented formula, for tiny.toml: 2 layers, B = 8, T = 32, d = 32, no learned positions.
  const double P = report["params_total"], V = report["vocab_size"], B = 8, T = 32, d = 32;
  CHECK(m["weights_bytes"].get<double>() == 4 * P);
  CHECK(m["gradients_bytes"].get<double>() == 4 * P);
  CHECK(m["optimizer_bytes"].get<double>() == 8 * P);
  CHECK(m["activations_bytes"].get<double>() == doctest::Approx(4 * (B * T * d + 2 * 34 * B * T * d)));
  CHECK(m["logits_bytes"].get<double>() == doctest::Approx(2 * 4 * B * T * V));
  CHECK(m["total_bytes"].get<double>() == doctest::Approx(16 * P + 4 * (69 * B * T * d) + 8 * B * T * V));
  CHECK(host("explain " + tiny()).output.find("training memory (estimate): ") != std::string::npos);
  CHECK(host("validate " + tiny()).exit_code == 0);

  const std::string huge = " --set model.d_model=65536 --set training.batch_size=65536";
  check_refused(host("validate " + tiny() + huge), tiny() + ": memory: training needs about ");
  auto dir = scratch("too-big");
  auto run = host("run " + tiny() + huge + " --output-dir " + dir.string() + cache_args());
  check_refused(run, "activations ");
  CHECK(run.output.find("reduce training.batch_size") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("bad input: running out of memory is an error naming the command, not an abort") {
  // 256 GiB of learned position embeddings, under a 16 GB address-space limit (the
  // same everywhere, whatever the machine has); compile allocates the parameters.
  auto dir = scratch("oom");
  auto r = mixlab::test::run_command("ulimit -v 16000000; " + std::string(MIXLAB_HOST_EXE) + " compile " + tiny() +
                                     " --set model.positional=learned --set model.max_seq_len=1048576"
                                     " --set model.d_model=65536 --output-dir " + dir.string() +
                                     " --plugin-path " + MIXLAB_TEST_PLUGIN_DIR);
  check_refused(r, "error: out of memory while running host compile");
  CHECK_FALSE(std::filesystem::exists(dir));
  CHECK_FALSE(std::filesystem::exists(dir.string() + ".tmp"));
}

TEST_CASE("bad input: a data source that is a device or a FIFO is refused, not read forever") {
  auto fifo = scratch("fifo") / "corpus.txt";
  std::filesystem::create_directories(fifo.parent_path());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto dir = scratch("device-source");
  // Without the check, both hang: the timeout turns that into a failure (exit 124).
  check_refused(host("run " + tiny() + " --set data.source=/dev/zero --output-dir " + dir.string() + cache_args(), 120),
                "data.source: /dev/zero is a character device, not a regular file or a folder");
  check_refused(host("run " + tiny() + " --set data.source=" + fifo.string() + " --output-dir " + dir.string() +
                     cache_args(), 120),
                "is a FIFO (named pipe), not a regular file or a folder");
  CHECK_FALSE(std::filesystem::exists(dir));
  check_refused(host("forward " + dir.string() + " --input /dev/zero --output x.safetensors", 120),
                "--input: /dev/zero: not a regular file");
}

TEST_CASE("bad input: huge and non-finite counts on the command line are refused") {
  auto run_dir = scratch("no-run").string();
  struct Case {
    std::string args, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"generate " + run_dir + " --tokens 99999999999999999999", "--tokens"},
           {"generate " + run_dir + " --tokens 5000000", "--tokens"},
           {"generate " + run_dir + " --temperature nan", "expected a finite number, got nan"},
           {"ab " + tiny() + " --swap a=b:c --repeats 99999999999999", "--repeats"},
           {"ab " + tiny() + " --swap a=b:c --repeats 0", "--repeats"},
           {"ab " + tiny() + " --swap a=b:c --tolerance nan", "--tolerance: expected a finite number, got nan"},
           {"ab " + tiny() + " --swap a=b:c --tolerance inf", "expected a finite number, got inf"},
           {"compare " + tiny() + " --seeds 99999999", "--seeds"},
           {"validate " + tiny() + " --set training.grad_accum_steps=100000000",
            "--set training.grad_accum_steps=100000000: training.grad_accum_steps: expected an integer in 1 .. 65536"},
       })
    check_refused(host(c.args, 120), c.expected);
}

TEST_CASE("bad input: compile never deletes what it did not create") {
  auto dir = scratch("compile-out");
  std::filesystem::path tmp = dir.string() + ".tmp";
  write(tmp / "mine.txt", "the user's");
  check_refused(host("compile " + tiny() + " --output-dir " + dir.string()), ".tmp exists");
  std::ifstream kept(tmp / "mine.txt");
  std::string text((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
  CHECK(text == "the user's");
  CHECK_FALSE(std::filesystem::exists(dir));
  check_refused(host("compile " + tiny() + " --output-dir \"\""), "empty path");
}

TEST_CASE("bad input: every error names its file or --set, and no library text reaches the user") {
  auto root = scratch("messages");
  auto bad_toml = root / "bad.toml";
  write(bad_toml, "[job\nname = 1\n");
  // Run folders whose overrides.json is garbled or of the wrong shape.
  for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
           {"garbled", "[\"training.steps=3\""}, {"object", "{\"a\": 1}"}, {"numbers", "[1, 2]"}}) {
    write(root / name / "overrides.json", text);
    std::filesystem::copy_file(tiny(), root / name / "experiment.toml");
  }
  write(root / "numbers" / "model.safetensors", "");  // a model folder: its experiment is read before its weights
  struct Case {
    std::string args, expected;
  };
  const std::string plus = " --output-dir " + (root / "out").string() + cache_args();
  std::vector<Case> cases{
      {"validate " + (root / "missing.toml").string(), (root / "missing.toml").string() + ": file: no such experiment file"},
      {"validate " + bad_toml.string(), bad_toml.string() + ":1:5: syntax: invalid TOML"},
      {"explain " + root.string(), root.string() + ": file: no such experiment file"},
      {"validate " + tiny() + " --set training.steps=abc", "--set training.steps=abc: training.steps: expected an integer"},
      {"run " + tiny() + " --set training.stepz=3" + plus, "--set training.stepz=3: training.stepz: unknown key"},
      {"explain " + tiny() + " --set model.schedule.99999999999999999999.repeat=1",
       "--set model.schedule.99999999999999999999.repeat=1: "},
      {"validate " + tiny() + " --set training.max_norm=nan", "--set training.max_norm=nan: training.max_norm: expected a number"},
      {"explain " + tiny() + " --set model.templates.block.mixer.scale=inf",
       "--set model.templates.block.mixer.scale=inf: model.templates.block.mixer.scale: expected a finite number"},
      {"run " + tiny() + " --set job.name=../escape" + plus, "--set job.name=../escape: job.name: must not start with '.'"},
      {"run --resume " + (root / "garbled").string(), (root / "garbled" / "overrides.json").string() + ": expected a JSON list"},
      {"run --resume " + (root / "object").string(), (root / "object" / "overrides.json").string() + ": expected a JSON list"},
      {"generate " + (root / "numbers").string(), (root / "numbers" / "overrides.json").string() + ": expected a JSON list"},
      {"run --resume " + (root / "missing-run").string(), (root / "missing-run").string() + ": not a run folder"},
      {"run " + tiny() + " --output-dir /dev/null/run" + cache_args(), "cannot create /dev/null/run.tmp (Not a directory)"},
  };
  for (const auto& c : cases) check_refused(host(c.args, 300), c.expected);
}

}  // TEST_SUITE
