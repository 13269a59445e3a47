// Faults during a run (docs/fault-model.md, ## Checkpoints): a run killed
// (SIGKILL, through MIXLAB_FAULT_POINT) at each crash point resumes with
// `host run --resume` to exactly the metrics and final weights of the
// uninterrupted run, with dropout on and a log window (3 steps) that does not
// divide the checkpoint interval (4). Damaged checkpoints are named and skipped;
// a trainer_state.json that is garbled or disagrees with the weights is refused
// naming the file and field. Registered as its own ctest entry (`resume`),
// excluded from `unit`: it runs about a dozen short trainings.
#include "host_test_helpers.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer_state.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace fs = std::filesystem;
using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::read_jsonl;
using mixlab::test::run_command;
using mixlab::test::scratch;

namespace {

// 12 steps, a checkpoint every 4, a train line every 3, validation every 4, dropout on, a top-2 MoE
// FFN (its routing statistics are in every train line and the manifest), one thread.
std::string tiny_args() {
  return mixlab::test::tiny_experiment() + cache_args() +
         " --set training.steps=12 --set checkpoint.every=4 --set metrics.log_every=3 --set validation.every=4"
         " --set validation.batches=2 --set training.batch_size=4 --set training.threads=1 --set model.dropout=0.1"
         " --set 'model.templates.block.ffn={plugin=\"moe\", impl=\"sparse\", experts=4, top_k=2, expert_hidden=32}'";
}

fs::path checkpoint(int step) { return mixlab::checkpoint_dir("", step); }  // relative to a run folder

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& file, const std::string& data) { std::ofstream(file, std::ios::binary | std::ios::trunc) << data; }

// The uninterrupted run, trained once for the whole suite.
const fs::path& reference_run() {
  static const fs::path dir = [] {
    auto d = scratch("reference");
    auto r = host("run " + tiny_args() + " --output-dir " + d.string());
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    REQUIRE(read_json(d / "manifest.json").contains("routing"));
    REQUIRE(read_jsonl(d / "metrics.jsonl").front().contains("layers.0.ffn/expert_share"));
    return d;
  }();
  return dir;
}

// Every logged value but the wall-clock ones (time_s, created_at, speed/*) and the final
// weights and optimizer state must be identical to the uninterrupted run's.
void check_same_as_reference(const fs::path& dir) {
  const auto& ref = reference_run();
  auto a = read_jsonl(ref / "metrics.jsonl"), b = read_jsonl(dir / "metrics.jsonl");
  REQUIRE(a.size() == b.size());
  auto logged = [](nlohmann::json j) {
    for (const char* key : {"time_s", "created_at"}) j.erase(key);
    for (auto it = j.begin(); it != j.end();) it = it.key().rfind("speed/", 0) == 0 ? j.erase(it) : std::next(it);
    return j;
  };
  for (size_t i = 0; i < a.size(); ++i) CHECK_MESSAGE(logged(a[i]) == logged(b[i]), "line " << i + 1 << ": " << a[i].dump() << " vs " << b[i].dump());
  for (const char* file : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    CHECK_MESSAGE(bytes_of(ref / checkpoint(12) / file) == bytes_of(dir / checkpoint(12) / file), file << " differs");
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(m["results"] == read_json(ref / "manifest.json")["results"]);
  CHECK(m["routing"] == read_json(ref / "manifest.json")["routing"]);
}

// Kills a fresh run at `point`, then resumes it.
fs::path kill_and_resume(const std::string& point) {
  auto dir = scratch("killed-" + point.substr(0, point.find(':')));
  auto killed = run_command("MIXLAB_FAULT_POINT=" + point + " " + MIXLAB_HOST_EXE + " run " + tiny_args() +
                            " --output-dir " + dir.string() + " --plugin-path " + MIXLAB_TEST_PLUGIN_DIR);
  INFO(killed.output);
  CHECK(killed.exit_code != 0);
  CHECK(read_json(dir / "manifest.json")["status"] != "completed");
  auto resumed = host("run --resume " + dir.string());
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  return dir;
}

}  // namespace

TEST_SUITE("resume") {

TEST_CASE("resume: a run killed mid-step (after backward, before the optimizer step) resumes bit-identically") {
  // Resumed at step 4, whose loss is in the window of the line at step 6: the window must be restored.
  check_same_as_reference(kill_and_resume("mid-step:7"));
}

TEST_CASE("resume: a run killed before its first checkpoint trains again from step 0, bit-identically") {
  check_same_as_reference(kill_and_resume("mid-step:2"));
}

TEST_CASE("resume: a run killed inside a checkpoint write (files written, folder not renamed) resumes bit-identically") {
  check_same_as_reference(kill_and_resume("checkpoint-write:8"));
}

TEST_CASE("resume: a run killed between a checkpoint's rename and its DONE resumes bit-identically") {
  check_same_as_reference(kill_and_resume("checkpoint-done:8"));
}

TEST_CASE("resume: a run killed during its final manifest write completes with the same results") {
  check_same_as_reference(kill_and_resume("final-manifest:12"));
}

TEST_CASE("resume: a malformed MIXLAB_FAULT_POINT is refused") {
  auto r = run_command(std::string("MIXLAB_FAULT_POINT=mid-stp:3 ") + MIXLAB_HOST_EXE + " run " + tiny_args() +
                       " --output-dir " + scratch("bad-fault").string() + " --plugin-path " + MIXLAB_TEST_PLUGIN_DIR);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("MIXLAB_FAULT_POINT: expected NAME:STEP") != std::string::npos);
}

TEST_CASE("resume: a damaged newest checkpoint is named and --resume falls back to the newest intact one") {
  auto dir = scratch("damaged");
  fs::copy(reference_run(), dir, fs::copy_options::recursive);
  auto weights = dir / checkpoint(12) / "model.safetensors";
  auto data = bytes_of(weights);
  data[data.size() / 2] ^= 0x01;  // one flipped bit
  write_bytes(weights, data);

  // forward and generate warn and use step 8; --resume falls back and retrains steps 9..12 exactly.
  auto tokens = dir / "tokens.txt";
  std::ofstream(tokens) << "1 2 3 4\n";
  auto fwd = host("forward " + dir.string() + " --input " + tokens.string() + " --output " + (dir / "logits.safetensors").string());
  INFO(fwd.output);
  CHECK(fwd.exit_code == 0);
  CHECK(fwd.output.find(weights.string() + " does not match its SHA-256 in DONE") != std::string::npos);
  CHECK(fwd.output.find("falling back to the newest intact checkpoint " + (dir / checkpoint(8)).string()) != std::string::npos);
  auto r = host("run --resume " + dir.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find(weights.string() + " does not match its SHA-256 in DONE") != std::string::npos);
  CHECK(r.output.find("resumed from " + (dir / checkpoint(8)).string() + " at step 8") != std::string::npos);
  check_same_as_reference(dir);
}

TEST_CASE("resume: verify_checkpoint names a flipped byte, a truncated file, a missing file and a damaged DONE") {
  auto dir = scratch("verify");
  fs::copy(reference_run() / checkpoint(12), dir, fs::copy_options::recursive);
  auto check = mixlab::verify_checkpoint(dir);
  CHECK(check.verified);
  CHECK(check.problem.empty());

  auto original = bytes_of(dir / "optimizer.safetensors");
  write_bytes(dir / "optimizer.safetensors", original.substr(0, original.size() - 1));
  CHECK(mixlab::verify_checkpoint(dir).problem ==
        (dir / "optimizer.safetensors").string() + " has " + std::to_string(original.size() - 1) + " bytes, DONE says " +
            std::to_string(original.size()));
  auto flipped = original;
  flipped[100] ^= 0x80;
  write_bytes(dir / "optimizer.safetensors", flipped);
  CHECK(mixlab::verify_checkpoint(dir).problem ==
        (dir / "optimizer.safetensors").string() + " does not match its SHA-256 in DONE (its bytes changed)");
  write_bytes(dir / "optimizer.safetensors", original);
  CHECK(mixlab::verify_checkpoint(dir).problem.empty());

  auto state = bytes_of(dir / "trainer_state.json");
  fs::remove(dir / "trainer_state.json");
  CHECK(mixlab::verify_checkpoint(dir).problem == (dir / "trainer_state.json").string() + " is missing");
  write_bytes(dir / "trainer_state.json", state);

  auto done = bytes_of(dir / "DONE");
  write_bytes(dir / "DONE", done.substr(0, done.size() / 2));
  CHECK(mixlab::verify_checkpoint(dir).problem.find((dir / "DONE").string() + " is damaged") == 0);

  // A DONE written before checksums existed (empty) is accepted, unverified.
  write_bytes(dir / "DONE", "");
  check = mixlab::verify_checkpoint(dir);
  CHECK_FALSE(check.verified);
  CHECK(check.problem.empty());
}

TEST_CASE("resume: when every checkpoint is damaged the run is refused, listing each") {
  auto run = scratch("all-damaged");
  fs::create_directories(run / "checkpoints");
  for (int step : {4, 8}) {
    fs::copy(reference_run() / checkpoint(step), run / checkpoint(step), fs::copy_options::recursive);
    fs::remove(run / checkpoint(step) / "model.safetensors");
  }
  try {
    mixlab::newest_intact_checkpoint(run);
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    CHECK(what.find("every checkpoint is damaged") != std::string::npos);
    CHECK(what.find((run / checkpoint(4) / "model.safetensors").string() + " is missing") != std::string::npos);
    CHECK(what.find((run / checkpoint(8) / "model.safetensors").string() + " is missing") != std::string::npos);
  }
  CHECK_FALSE(mixlab::newest_intact_checkpoint(scratch("no-checkpoints")).has_value());
}

TEST_CASE("resume: trainer_state.json fields are checked, naming the file and field") {
  auto good = mixlab::TrainerState{}.to_json();
  good["step"] = 8;
  auto refused = [](const nlohmann::json& j) {
    try {
      mixlab::TrainerState::from_json(j, "ts.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refused(good) == "accepted");
  auto without = [&](const char* key) {
    auto j = good;
    j.erase(key);
    return j;
  };
  auto with = [&](const char* key, nlohmann::json v) {
    auto j = good;
    j[key] = v;
    return j;
  };
  CHECK(refused(without("step")) == "ts.json: field \"step\" is missing");
  CHECK(refused(without("data_position")) == "ts.json: field \"data_position\" is missing");
  CHECK(refused(with("step", "8")) == "ts.json: field \"step\" must be an integer >= 0, got \"8\"");
  CHECK(refused(with("step", -1)) == "ts.json: field \"step\" must be an integer >= 0, got -1");
  CHECK(refused(with("tokens", 1.5)) == "ts.json: field \"tokens\" must be an integer >= 0, got 1.5");
  CHECK(refused(with("data_position", -3)) == "ts.json: field \"data_position\" must be a non-negative integer, got -3");
  CHECK(refused(with("best_val_loss", "low")) == "ts.json: field \"best_val_loss\" must be a number, got \"low\"");
  CHECK(refused(with("best_step", 9)) == "ts.json: field \"best_step\" is 9, after the checkpoint's step 8");
  CHECK(refused(with("window_steps", 9)) == "ts.json: field \"window_steps\" is 9, more than the checkpoint's step 8");
  CHECK(refused(with("last_eval", 3)) == "ts.json: field \"last_eval\" must be a JSON object");
  CHECK(refused(with("last_eval", {{"loss", 1.0}})) == "ts.json: field \"last_eval.ppl\" is missing");
  CHECK(refused(nlohmann::json::array()) == "ts.json: must be a JSON object");
  // Written before the window existed: accepted with an empty window.
  CHECK(refused(without("window_loss")) == "ts.json: field \"window_loss\" is missing");
  auto old = good;
  for (const char* key : {"window_loss", "window_steps", "last_loss", "last_grad_norm", "last_eval"}) old.erase(key);
  CHECK(refused(old) == "accepted");
}

TEST_CASE("resume: a garbled or disagreeing trainer_state.json is refused naming the file and field") {
  auto dir = scratch("bad-state");
  fs::copy(reference_run(), dir, fs::copy_options::recursive);
  fs::remove_all(dir / checkpoint(12));
  auto ckpt = dir / checkpoint(8), state_file = ckpt / "trainer_state.json";
  write_bytes(ckpt / "DONE", "");  // as written before checksums: the content checks still apply
  auto state = read_json(state_file);

  auto resume_error = [&](const std::string& contents) {
    write_bytes(state_file, contents);
    auto r = host("run --resume " + dir.string());
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("nlohmann") == std::string::npos);
    CHECK(r.output.find("json.exception") == std::string::npos);
    return r.output;
  };
  CHECK(resume_error("{\"step\": 8, \"tok").find(state_file.string() + ": not valid JSON") != std::string::npos);
  auto wrong_step = state;
  wrong_step["step"] = 9;
  CHECK(resume_error(wrong_step.dump()).find(state_file.string() + ": field \"step\" is 9, but " +
                                             (ckpt / "model.safetensors").string() + " holds the weights of step 8") !=
        std::string::npos);
  auto wrong_type = state;
  wrong_type["tokens"] = "many";
  CHECK(resume_error(wrong_type.dump()).find(state_file.string() + ": field \"tokens\" must be an integer >= 0") !=
        std::string::npos);
  write_bytes(state_file, state.dump());

  // Weights that disagree with the model: the run's experiment now asks for a wider model.
  auto overrides = read_json(dir / "overrides.json");
  overrides.push_back("model.d_model=48");
  write_bytes(dir / "overrides.json", overrides.dump());
  auto r = host("run --resume " + dir.string());
  CHECK(r.exit_code == 1);
  CHECK(r.output.find((ckpt / "model.safetensors").string() + ": the weights do not match the experiment's model") !=
        std::string::npos);
  CHECK(r.output.find("shape      embed.weight is [") != std::string::npos);
  CHECK(r.output.find(", 32] in the file, the model expects [") != std::string::npos);
}

}  // TEST_SUITE
