// `host run --profile-steps K` (train/step_profiler.hpp): self times of nested ops
// against a brute-force count, and the files a profiled bfloat16 run writes, with
// the matmul peak of its dtype in the manifest.
#include "train/step_profiler.hpp"
#include "host_test_helpers.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::read_json;
using mixlab::test::scratch;

namespace {

// Random properly nested calls on two threads: each op spans children laid out inside it.
std::vector<mixlab::OpInterval> random_call_tree(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<mixlab::OpInterval> ops;
  const char* names[] = {"aten::mm", "aten::add", "aten::linear", "aten::copy_"};
  std::function<void(uint64_t, uint64_t, uint64_t, int)> grow = [&](uint64_t thread, uint64_t start, uint64_t end,
                                                                     int depth) {
    ops.push_back({names[rng() % 4], thread, start, end});
    if (depth == 0 || end - start < 8) return;
    uint64_t t = start + 1 + rng() % 3;
    while (t + 4 < end) {
      uint64_t len = 1 + rng() % std::max<uint64_t>(1, (end - t) / 2);
      grow(thread, t, t + len, depth - 1);
      t += len + rng() % 3;
    }
  };
  for (uint64_t thread : {1, 2})
    for (uint64_t start = 0; start < 3000; start += 1000) grow(thread, start + thread, start + thread + 900, 4);
  std::shuffle(ops.begin(), ops.end(), rng);
  return ops;
}

// The direct children of op i: ops of its thread inside it with no other op between them and i.
std::map<std::string, double> brute_force_self_ns(const std::vector<mixlab::OpInterval>& ops) {
  auto inside = [&](size_t a, size_t b) {  // a strictly nested in b
    return a != b && ops[a].thread == ops[b].thread && ops[b].start_ns <= ops[a].start_ns &&
           ops[a].end_ns <= ops[b].end_ns && (ops[a].start_ns != ops[b].start_ns || ops[a].end_ns != ops[b].end_ns);
  };
  std::map<std::string, double> self;
  for (size_t i = 0; i < ops.size(); ++i) {
    double t = static_cast<double>(ops[i].end_ns - ops[i].start_ns);
    for (size_t j = 0; j < ops.size(); ++j) {
      if (!inside(j, i)) continue;
      bool direct = true;
      for (size_t k = 0; k < ops.size() && direct; ++k) direct = !(inside(j, k) && inside(k, i));
      if (direct) t -= static_cast<double>(ops[j].end_ns - ops[j].start_ns);
    }
    self[ops[i].name] += t;
  }
  return self;
}

}  // namespace

TEST_CASE("profile: self time is each op's time minus its direct callees', summed per name") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    auto ops = random_call_tree(seed);
    auto expected = brute_force_self_ns(ops);
    auto totals = mixlab::op_totals(ops);
    REQUIRE(totals.size() == expected.size());
    double self_sum = 0;
    for (size_t i = 0; i < totals.size(); ++i) {
      CHECK(totals[i].self_ns == expected[totals[i].name]);  // integer nanoseconds: exact
      if (i > 0) CHECK(totals[i - 1].self_ns >= totals[i].self_ns);
      self_sum += totals[i].self_ns;
    }
    // The roots' durations: every nanosecond inside a root is some op's self time exactly once.
    CHECK(self_sum == 2 * 3 * 900.0);
  }
}

TEST_CASE("run: --profile-steps writes the ops of a bfloat16 step and a Chrome trace; the manifest has the bfloat16 peak") {
  auto dir = scratch("profiled");
  const std::string base = "run " + mixlab::test::tiny_experiment() + " --output-dir " + dir.string() + cache_args() +
                           " --set training.steps=3 --set training.dtype=bfloat16";
  auto r = host(base + " --profile-steps 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream table(dir / "profile.txt");
  std::stringstream text;
  text << table.rdbuf();
  CHECK(text.str().find("2 step(s)") != std::string::npos);
  CHECK(text.str().find("aten::mm") != std::string::npos);
  auto trace = read_json(dir / "profile.json");
  CHECK(trace["traceEvents"].size() > 10);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["artifacts"]["profile"][0] == "profile.txt");
  const auto& perf = m["performance"];
  CHECK(perf["matmul_dtype"] == "bfloat16");
  CHECK(perf["matmul_gflops_run_dtype"].get<double>() > 0);
  CHECK(perf["matmul_gflops_measured"].get<double>() > 0);  // the float32 rate, as in every manifest
  double expected_mfu = m["model"]["train_flops_per_token"].get<double>() * perf["tok_per_s"].get<double>() /
                        (perf["matmul_gflops_run_dtype"].get<double>() * 1e9);
  CHECK(perf["mfu"].get<double>() == doctest::Approx(expected_mfu).epsilon(1e-9));

  auto few = host("run " + mixlab::test::tiny_experiment() + " --output-dir " + scratch("too-few").string() +
                  cache_args() + " --set training.steps=3 --profile-steps 3");
  CHECK(few.exit_code == 1);
  CHECK(few.output.find("--profile-steps 3 needs 4 steps to run (the first is not profiled); 3 remain") !=
        std::string::npos);
  CHECK_FALSE(std::filesystem::exists(scratch("too-few")));
}
