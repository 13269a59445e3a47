// Bad values in experiment files and --set: every float key refuses NaN and
// infinities, every integer key has an upper bound, list indices beyond 64 bits
// and run names that would leave runs/ are refused, each with where it came from.
#include "experiment/loader.hpp"
#include "experiment/schema.hpp"
#include "host_test_helpers.hpp"
#include "util/error_message.hpp"

#include <c10/util/Exception.h>
#include <doctest/doctest.h>

#include <fstream>
#include <map>

using namespace mixlab;

namespace {

// A valid experiment, by section, so that a test can add a key to its own section.
std::map<std::string, std::string> base_sections() {
  return {{"job", "description = \"bad values\"\n"},
          {"model", "d_model = 16\nmax_seq_len = 32\n"},
          {"data", "source = \"builtin:grammar\"\nseq_len = 16\n"},
          {"training", "steps = 10\n"}};
}

const char* kLayers = R"(
[model.templates.a]
mixer = { plugin = "prefix_mean" }
ffn = { plugin = "mlp" }
[[model.schedule]]
template = "a"
repeat = 3
)";

// Writes the experiment with `line` added to `section`; returns its path.
std::filesystem::path write_with(const std::string& section, const std::string& line) {
  auto sections = base_sections();
  if (!section.empty()) sections[section] += line + "\n";
  std::string text;
  for (const auto& [name, body] : sections) text += "[" + name + "]\n" + body;
  auto file = test::scratch("bad-values") / "e.toml";
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text << kLayers;
  return file;
}

std::string problems(const std::filesystem::path& file, const std::vector<std::string>& sets = {}) {
  try {
    load_experiment(file, sets);
  } catch (const ExperimentError& e) {
    return e.what();
  }
  return "";
}

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }
std::string name_in_section(const std::string& key) { return key.substr(key.find('.') + 1); }

}  // namespace

TEST_CASE("bad values: every float key refuses NaN and infinities, in the file and in --set") {
  int floats = 0;
  for (const auto& f : schema_fields()) {
    if (f.type != "float") continue;
    ++floats;
    for (std::string v : {"nan", "inf", "-inf"}) {
      auto in_file = problems(write_with(section_of(f.key), name_in_section(f.key) + " = " + v));
      INFO(f.key, " = ", v, ":\n", in_file);
      CHECK(in_file.find("e.toml:") != std::string::npos);
      CHECK(in_file.find(f.key + ": expected a number") != std::string::npos);
      auto in_set = problems(write_with("", ""), {f.key + "=" + v});
      INFO(in_set);
      CHECK(in_set.find("--set " + f.key + "=" + v + ": " + f.key + ": expected a number") != std::string::npos);
    }
  }
  CHECK(floats >= 9);
  // The lists and free-form tables of numbers too.
  auto base = write_with("", "");
  CHECK(problems(base, {"optimizer.betas=[nan, 0.9]"}).find("optimizer.betas: expected numbers in [0, 1)") !=
        std::string::npos);
  CHECK(problems(base, {"data.options.sentences=inf"}).find("--set data.options.sentences=inf: data.options.sentences: expected a finite number") != std::string::npos);
  CHECK(problems(base, {"model.templates.a.mixer.scale=nan"})
            .find("--set model.templates.a.mixer.scale=nan: model.templates.a.mixer.scale: expected a finite number, got nan") !=
        std::string::npos);
  CHECK(problems(base, {"model.templates.a.ffn.gains=[1.0, [2.0, -inf]]"}).find("expected a finite number, got -inf") !=
        std::string::npos);
  // max_norm = nan used to switch clipping off silently.
  CHECK(problems(write_with("training", "max_norm = nan")).find("e.toml:11:12: training.max_norm") != std::string::npos);
}

TEST_CASE("bad values: every integer key has an upper bound") {
  int integers = 0;
  for (const auto& f : schema_fields()) {
    if (f.type != "integer" || f.key == "job.seed") continue;
    ++integers;
    auto dots = f.allowed.find(" .. ");
    REQUIRE_MESSAGE(dots != std::string::npos, f.key, " has no upper bound: ", f.allowed);
    const std::string above = std::to_string(std::stoll(f.allowed.substr(dots + 4)) + 1);
    auto msg = problems(write_with("", ""), {f.key + "=" + above});
    INFO(f.key, "=", above, ":\n", msg);
    CHECK(msg.find("--set " + f.key + "=" + above + ": " + f.key + ": expected an integer in " + f.allowed) !=
          std::string::npos);
    auto beyond_64_bits = problems(write_with("", ""), {f.key + "=99999999999999999999"});
    CHECK(beyond_64_bits.find(f.key + ": expected an integer in") != std::string::npos);
  }
  CHECK(integers >= 15);
  auto base = write_with("", "");
  CHECK(problems(base, {"model.schedule.0.repeat=5000"}).find("model.schedule.repeat: expected an integer in 1 .. 4096") !=
        std::string::npos);
  // Each within its bound, together too many.
  CHECK(problems(base, {"training.steps=1000000000", "training.batch_size=65536", "training.grad_accum_steps=65536"})
            .find("training.steps: steps x batch_size x grad_accum_steps x data.seq_len is") != std::string::npos);
}

TEST_CASE("bad values: --set list indices and keys that are not keys are refused, attributed to the --set") {
  auto base = write_with("", "");
  struct Case {
    std::string set, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"model.schedule.99999999999999999999.repeat=1",
            "--set model.schedule.99999999999999999999.repeat=1: model.schedule.99999999999999999999.repeat: no element "
            "99999999999999999999 in this list (it has 1, counted from 0)"},
           {"model.schedule.99999999999999999999=1", "no element 99999999999999999999 in this list"},
           {"model.schedule.-1.repeat=1", "no element -1 in this list"},
           {"model.schedule.1.repeat=1", "no element 1 in this list"},
           {"training.steps.x=1", "--set training.steps.x=1: training.steps.x: steps is a value, not a table or list"},
           {"training..steps=1", "--set training..steps=1: training..steps: expected a dotted key"},
           {"training.steps=abc", "--set training.steps=abc: training.steps: expected an integer in 1 .. 1000000000, got \"abc\""},
           {"training.stepz=3", "--set training.stepz=3: training.stepz: unknown key (did you mean \"steps\"?)"},
       }) {
    auto msg = problems(base, {c.set});
    INFO(c.set, ":\n", msg);
    CHECK(msg.find(c.expected) != std::string::npos);
  }
  CHECK(problems(base, {"model.schedule.0.repeat=2"}).empty());
}

TEST_CASE("bad values: job.name cannot leave runs/") {
  for (const std::string& name : std::vector<std::string>{"..", "../up", "a/b", "a\\\\b", ".hidden", "a..b", "", "nul\\u0000x", std::string(129, 'n')}) {
    auto msg = problems(write_with("job", "name = \"" + name + "\""));
    INFO(name, ":\n", msg);
    CHECK(msg.find("e.toml:6:8: job.name: ") != std::string::npos);
  }
  CHECK(problems(write_with("job", "name = \"my-run_2.v1\"")).empty());
}

TEST_CASE("bad values: out of memory and library errors read as what happened") {
  const std::string doing = "host compile";
  CHECK(error_message(std::bad_alloc(), doing) == "out of memory while running host compile (an allocation failed); "
                                                   "reduce the sizes (batch, sequence, width, layers or counts) or free memory");
  CHECK(error_message(std::length_error("vector::_M_default_append"), doing).find("a size too large to allocate while "
                                                                                  "running host compile") == 0);
  try {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "DefaultCPUAllocator: not enough memory: you tried to allocate 5 bytes.");
  } catch (const std::exception& e) {
    auto msg = error_message(e, doing);
    CHECK(msg.find("out of memory while running host compile: DefaultCPUAllocator: not enough memory") == 0);
    CHECK(msg.find("Exception raised from") == std::string::npos);
  }
  // What the CPU allocator throws (a CAFFE_ENFORCE, a plain c10::Error).
  c10::Error enforce("alloc_cpu.cpp", 127, "err == 0", "DefaultCPUAllocator: can't allocate memory: you tried to "
                     "allocate 5 bytes.", nullptr);
  CHECK(std::string(enforce.what_without_backtrace()).find("[enforce fail at alloc_cpu.cpp:127]") == 0);
  CHECK(error_message(enforce, doing).find("out of memory while running host compile: DefaultCPUAllocator: can't "
                                           "allocate memory: you tried to allocate 5 bytes.; reduce") == 0);
  try {
    TORCH_CHECK(false, "shapes do not match");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("Exception raised from") != std::string::npos);
    CHECK(error_message(e, doing) == "shapes do not match");
  }
  std::filesystem::filesystem_error fs_error("cannot create directories", "/no/such/x",
                                             std::make_error_code(std::errc::permission_denied));
  CHECK(error_message(fs_error, doing) == "/no/such/x: Permission denied");
  try {
    (void)nlohmann::json::parse("{oops");
  } catch (const std::exception& e) {
    auto msg = error_message(e, doing);
    CHECK(msg.find("malformed JSON while running host compile: parse error at line 1") == 0);
    CHECK(msg.find("json.exception") == std::string::npos);
  }
}
