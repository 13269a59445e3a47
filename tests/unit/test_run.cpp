// End to end: `host run` on a tiny experiment trains, beats the unigram
// baseline, writes its artifacts, resumes exactly, and explain counts the
// parameters the run built.
#include "model/safetensors.hpp"
#include "host_test_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::read_jsonl;
using mixlab::test::scratch;

namespace {
std::string tiny() { return mixlab::test::tiny_experiment(); }
}  // namespace

TEST_CASE("run: a tiny run learns, beats the unigram baseline and writes its artifacts") {
  auto dir = scratch("e2e");
  auto r = host("run " + tiny() + " --output-dir " + dir.string() + cache_args());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "completed");
  double val = m["results"]["final_val_loss"], baseline = m["data"]["unigram_baseline_loss"];
  CHECK(val < baseline);
  CHECK(m["results"]["final_val_bpb"].get<double>() > 0);
  CHECK(m["plugins"].size() == 2);
  CHECK(m["plugins"][0]["sha256"].get<std::string>().size() == 64);
  CHECK(m["performance"]["matmul_gflops_measured"].get<double>() > 0);
  CHECK(m["performance"]["aten_threads"] == 2);
  const std::string malloc = m["software"]["malloc"];  // util/allocator.hpp, unless the environment set glibc's own
  CHECK((malloc.starts_with("glibc: mmap_threshold 32 MiB") || malloc.starts_with("glibc, set by the environment")));
  auto lines = read_jsonl(dir / "metrics.jsonl");
  REQUIRE(lines.size() > 3);
  CHECK(lines.front().contains("train/loss"));
  CHECK(lines.front().contains("speed/tok_per_s"));
  CHECK(std::filesystem::exists(dir / "checkpoints" / "step-00000040" / "DONE"));
  CHECK(std::filesystem::exists(dir / "loss.png"));

  // The weights round-trip and match the parameter count explain reports.
  auto weights = mixlab::load_safetensors(dir / "checkpoints" / "step-00000040" / "model.safetensors");
  int64_t total = 0;
  for (const auto& [name, t] : weights.tensors) total += t.numel();
  CHECK(total == m["model"]["params_total"].get<int64_t>());
  auto explain = mixlab::test::host_stdout("explain " + tiny() + " --json" + cache_args());
  REQUIRE(explain.exit_code == 0);
  CHECK(nlohmann::json::parse(explain.output)["params_total"].get<double>() == static_cast<double>(total));
}

TEST_CASE("run: resuming from a checkpoint reproduces the uninterrupted run step for step") {
  auto full = scratch("full"), resumed = scratch("resumed");
  REQUIRE(host("run " + tiny() + " --output-dir " + full.string() + cache_args()).exit_code == 0);
  // The interrupted twin: the same run with its last checkpoint and metrics after step 20 removed.
  std::filesystem::copy(full, resumed, std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(resumed / "checkpoints" / "step-00000040");
  auto r = host("run --resume " + resumed.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto a = read_jsonl(full / "metrics.jsonl"), b = read_jsonl(resumed / "metrics.jsonl");
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["step"] == b[i]["step"]);
    for (const char* key : {"train/loss", "val/loss", "optim/grad_norm"})
      if (a[i].contains(key)) CHECK_MESSAGE(a[i][key].get<double>() == b[i][key].get<double>(), key, " at step ", a[i]["step"]);
  }
}

TEST_CASE("run: bad input stops with a clear error and leaves no run folder") {
  auto dir = scratch("bad");
  auto r = host("run " + tiny() + " --output-dir " + dir.string() + " --set model.templates.block.mixer.plugin=nosuch");
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("no plugin named \"nosuch\"") != std::string::npos);
  CHECK(r.output.find("--set model.templates.block.mixer.plugin=nosuch: model.templates.block.mixer.plugin:") !=
        std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir));
  auto rejected = host("run " + tiny() + " --output-dir " + dir.string() + " --set model.templates.block.ffn.activation=tanh");
  CHECK(rejected.exit_code == 1);
  CHECK(rejected.output.find("activation: must be one of") != std::string::npos);
  auto small = host("run " + tiny() + " --output-dir " + dir.string() + " --set data.options.sentences=1" + cache_args());
  CHECK(small.exit_code == 1);
  CHECK(small.output.find("error:") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir));  // the worker failed in set-up: the supervisor removed the folder
}

TEST_CASE("run: a SentencePiece vocabulary the corpus cannot fill is reported, and the model uses the real one") {
  auto dir = scratch("small-vocab");
  auto r = host("run " + tiny() + " --output-dir " + dir.string() +
                " --set tokenizer.kind=sentencepiece --set tokenizer.vocab_size=20000 --set training.steps=2" +
                cache_args());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("asked for 20000 pieces, the corpus gave") != std::string::npos);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["data"]["vocab_size"].get<int64_t>() < 20000);
}

TEST_CASE("run: a non-finite loss stops with exit code 3 and a failed manifest") {
  // The nan_output test mixer makes the very first loss NaN.
  auto dir = scratch("nan");
  auto r = host("run " + tiny() + " --output-dir " + dir.string() +
                " --set model.templates.block.mixer.plugin=nan_output" + cache_args());
  INFO(r.output);
  CHECK(r.exit_code == 3);
  CHECK(r.output.find("the training loss became nan at step 0") != std::string::npos);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "failed");
  CHECK(m["error"].get<std::string>().find("last good checkpoint is kept") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "checkpoints" / "step-00000000"));
}

TEST_CASE("run: a non-finite gradient under a finite loss stops before the optimizer step, weights kept clean") {
  // fault_at_step's nan_gradient: at step 3 the mixer's y is finite but its backward is NaN.
  auto dir = scratch("nan-gradient");
  auto r = host("run " + tiny() + " --output-dir " + dir.string() +
                " --set model.templates.block.mixer.plugin=fault_at_step"
                " --set model.templates.block.mixer.fault=nan_gradient --set model.templates.block.mixer.step=3"
                " --set training.steps=6 --set checkpoint.every=1 --set validation.every=0" +
                cache_args());
  INFO(r.output);
  CHECK(r.exit_code == 3);
  CHECK(r.output.find("the gradient norm became nan at step 3 (the loss was ") != std::string::npos);
  CHECK(r.output.find("the training loss became") == std::string::npos);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "failed");
  CHECK(m["error"].get<std::string>().find("stopped before the optimizer step") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "checkpoints" / "step-00000004"));
  const auto last = dir / "checkpoints" / "step-00000003";
  REQUIRE(std::filesystem::exists(last / "DONE"));
  for (const auto& [name, tensor] : mixlab::load_safetensors(last / "model.safetensors").tensors)
    CHECK_MESSAGE(torch::isfinite(tensor).all().item<bool>(), name);
}

TEST_CASE("safetensors: files round-trip and the Python safetensors package reads them") {
  auto dir = scratch("st");
  std::filesystem::create_directories(dir);
  auto a = torch::randn({3, 5}), b = torch::arange(7, torch::kInt64), c = torch::randn({2, 2}).to(torch::kBFloat16);
  mixlab::save_safetensors(dir / "x.safetensors", {{"a", a}, {"b", b}, {"c", c}}, {{"note", "hi"}});
  auto back = mixlab::load_safetensors(dir / "x.safetensors");
  REQUIRE(back.tensors.size() == 3);
  CHECK(torch::equal(back.tensors[0].second, a));
  CHECK(torch::equal(back.tensors[1].second, b));
  CHECK(torch::equal(back.tensors[2].second, c));
  CHECK(back.metadata.at("note") == "hi");
  std::string out = mixlab::test::run_command("python3 -c \"from safetensors.torch import load_file; d = load_file('" +
                                              (dir / "x.safetensors").string() +
                                              "'); print(tuple(d['a'].shape), int(d['b'].sum()), str(d['c'].dtype))\"")
                        .output;
  CHECK(out.find("(3, 5) 21 torch.bfloat16") != std::string::npos);
  std::ofstream(dir / "bad.safetensors") << "xx";
  CHECK_THROWS_WITH(mixlab::load_safetensors(dir / "bad.safetensors"), doctest::Contains("not a valid safetensors file"));
}

TEST_CASE("ab: two attention implementations agree on identical weights; mismatched layouts are refused") {
  auto r = host("ab " + tiny() + " --set model.templates.block.mixer.plugin=attention --swap attention=reference:flash"
                " --repeats 2 --train 3 --output " + (scratch("ab") += ".json").string() + cache_args());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("A and B agree within") != std::string::npos);
  CHECK(r.output.find("logits") != std::string::npos);
  auto mismatch = host("ab " + tiny() + " --swap prefix_mean=default:wide" + cache_args());
  CHECK(mismatch.exit_code == 1);
  CHECK(mismatch.output.find("do not share a parameter layout") != std::string::npos);
  CHECK(mismatch.output.find("layers.0.mixer.bias only in wide") != std::string::npos);
}

TEST_CASE("run: a full disk while checkpointing fails clearly and leaves no partial checkpoint") {
  // A 1 MiB tmpfs is smaller than the first checkpoint of this model. Needs root (mount).
  auto dir = scratch("fulldisk");
  std::filesystem::create_directories(dir);
  if (std::system(("mount -t tmpfs -o size=1M tmpfs " + dir.string() + " 2>/dev/null").c_str()) != 0) {
    MESSAGE("skipped: cannot mount a tmpfs here (not root?)");
    return;
  }
  auto r = host("run " + tiny() + " --output-dir " + (dir / "run").string() + " --set model.d_model=128" + cache_args());
  std::string listing;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) listing += e.path().string() + "\n";
  auto manifest = read_json(dir / "run" / "manifest.json");
  std::system(("umount " + dir.string()).c_str());
  INFO(r.output, listing);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("writing checkpoint") != std::string::npos);
  CHECK(r.output.find("No space left on device") != std::string::npos);
  CHECK(listing.find("step-") == std::string::npos);
  CHECK(manifest["status"] == "failed");
}
