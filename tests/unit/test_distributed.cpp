// Data-parallel training on c10d (docs/distributed.md), end to end with real processes:
// torchrun (from the torch wheel) and the plain RANK/WORLD_SIZE/MASTER_* environment.
// Two ranks with half the batch follow the one-process trajectory; checkpoints resume at
// another world size; mismatched ranks are refused; a killed rank is named. Its own
// ctest entry (`distributed`): about a minute of several processes.
#include "host_test_helpers.hpp"
#include "launch/torchrun_env.hpp"
#include "model/safetensors.hpp"
#include "train/checkpoint.hpp"
#include "train/data_parallel.hpp"
#include "train/random_draws.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <thread>

using mixlab::free_port;
using mixlab::test::cache_args;
using mixlab::test::read_json;
using mixlab::test::read_jsonl;
using mixlab::test::run_command;
using mixlab::test::scratch;

namespace {

// Tiny model, one thread per rank, a loss line every step, fp32 and no dropout; 4 KiB
// gradient buckets, so a step all-reduces several. AdamW's eps is 1e-5: a gradient summed in
// another order (batch B in one GEMM against B/2 on each rank) differs by about one rounding,
// and AdamW's update g / (sqrt(v) + eps) turns that into up to lr * dg / eps where g is near
// zero. Measured on an AVX-512 CPU, the final weights then differed by 2.9e-5 (of each tensor's
// largest magnitude) at eps 1e-8, 4.7e-6 at 1e-6 and 1.1e-6 at 1e-5, the losses by 1e-7 at all three.
std::string settings(int batch, int steps) {
  std::string s = cache_args();
  for (std::string set : {"training.threads=1", "metrics.log_every=1", "validation.every=0", "checkpoint.every=3",
                          "checkpoint.keep_last=5", "model.dropout=0", "training.dtype=float32",
                          "training.dist_timeout_s=60", "training.bucket_mib=0.004", "optimizer.eps=1e-5"})
    s += " --set " + set;
  return s + " --set training.batch_size=" + std::to_string(batch) + " --set training.steps=" + std::to_string(steps);
}

std::string host_exe() { return std::string(MIXLAB_HOST_EXE); }
std::string plugins() { return std::string(" --plugin-path ") + MIXLAB_TEST_PLUGIN_DIR; }

// torchrun on this machine with its own free port (--standalone).
std::string torchrun(int nproc, const std::string& args) {
  return "env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS python3 -m torch.distributed.run --standalone --nproc-per-node " +
         std::to_string(nproc) + " --no-python " + host_exe() + " " + args + plugins();
}

// The plain environment for rank `rank` of `world` (no torchrun).
std::string plain_env(int rank, int world, int port) {
  return "env RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world) +
         " LOCAL_RANK=" + std::to_string(rank) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " ";
}

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

std::map<int64_t, double> losses(const std::filesystem::path& run) {
  std::map<int64_t, double> out;
  for (const auto& line : read_jsonl(run / "metrics.jsonl"))
    if (line.contains("train/loss")) out[line["step"]] = line["train/loss"];
  return out;
}

// Every step's training loss and every final weight agree to `tolerance` (relative to the
// tensor's largest magnitude for weights; 0: bit-identical).
void check_same_run(const std::filesystem::path& a, const std::filesystem::path& b, int steps, double tolerance) {
  auto la = losses(a), lb = losses(b);
  REQUIRE(la.size() == static_cast<size_t>(steps));
  REQUIRE(lb.size() == static_cast<size_t>(steps));
  for (const auto& [step, loss] : la) {
    INFO("step " << step << ": " << loss << " vs " << lb[step]);
    CHECK(relative(lb[step], loss) <= tolerance);
  }
  auto wa = mixlab::load_safetensors(mixlab::checkpoint_dir(a, steps) / "model.safetensors");
  auto wb = mixlab::load_safetensors(mixlab::checkpoint_dir(b, steps) / "model.safetensors");
  REQUIRE(wa.tensors.size() == wb.tensors.size());
  for (size_t i = 0; i < wa.tensors.size(); ++i) {
    const auto& [name, ta] = wa.tensors[i];
    const auto& tb = wb.tensors[i].second;
    double scale = std::max(ta.abs().max().item<double>(), 1e-12);
    INFO(name);
    CHECK((ta - tb).abs().max().item<double>() / scale <= tolerance);
  }
  auto sa = read_json(mixlab::checkpoint_dir(a, steps) / "trainer_state.json");
  auto sb = read_json(mixlab::checkpoint_dir(b, steps) / "trainer_state.json");
  CHECK(sa["data_position"] == sb["data_position"]);
  CHECK(sa["tokens"] == sb["tokens"]);
}

std::string tiny() { return mixlab::test::tiny_experiment(); }

// A top-2 MoE of 4 experts in the tiny model's FFN slots (its statistics are logged every step).
std::string moe(const std::string& more = "") {
  return " --set 'model.templates.block.ffn={plugin=\"moe\", impl=\"sparse\", experts=4, top_k=2, expert_hidden=32" +
         more + "}'";
}

// Every training line's logged values (loss, plugin statistics, grad norm; not times and
// speeds) agree to `tolerance`, except the keys that end with one of `skip`.
void check_same_logs(const std::filesystem::path& a, const std::filesystem::path& b, double tolerance,
                     const std::vector<std::string>& skip = {}) {
  auto la = read_jsonl(a / "metrics.jsonl"), lb = read_jsonl(b / "metrics.jsonl");
  REQUIRE(la.size() == lb.size());
  int compared = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    for (const auto& [key, va] : la[i].items()) {
      if (key == "time_s" || key == "created_at" || key.starts_with("speed/") ||
          std::any_of(skip.begin(), skip.end(), [&](const std::string& s) { return key.ends_with(s); }))
        continue;
      INFO("line " << i << " " << key << ": " << va.dump() << " vs " << lb[i][key].dump());
      REQUIRE(lb[i].contains(key));
      auto xs = va.is_array() ? va : nlohmann::json::array({va}), ys = lb[i][key].is_array() ? lb[i][key] : nlohmann::json::array({lb[i][key]});
      REQUIRE(xs.size() == ys.size());
      for (size_t j = 0; j < xs.size(); ++j) CHECK(relative(ys[j].get<double>(), xs[j].get<double>()) <= tolerance);
      ++compared;
    }
  }
  CHECK(compared > 0);
}

// Two ranks of a long run in the plain environment, their output in $log0 and $log1; once rank 1
// has logged step 3 the shell commands `then` run, with $p0 and $p1 the ranks' `host run` processes.
mixlab::test::CommandResult two_ranks_then(const std::filesystem::path& dir, const std::string& extra,
                                           const std::string& then) {
  const int port = free_port();
  auto base = " run " + tiny() + " --output-dir " + dir.string() + settings(4, 100000) + plugins() + extra;
  return run_command("(log0=" + dir.string() + ".0.log; log1=" + dir.string() + ".1.log; " + plain_env(0, 2, port) +
                     host_exe() + base + " > $log0 2>&1 & p0=$!; " + plain_env(1, 2, port) + host_exe() + base +
                     " > $log1 2>&1 & p1=$!; for i in $(seq 600); do grep -q 'step 3/' $log1 && break; sleep 0.1; done; " +
                     then + ")");
}

}  // namespace

TEST_SUITE("distributed") {

TEST_CASE("distributed: c10d's Gloo group broadcasts and averages gradients to the hand-computed values, both ways (2 ranks over TCP)") {
  for (const char* mode : {"overlap", "after_backward"}) {
    CAPTURE(mode);
    mixlab::ExperimentConfig config;
    config.training.dist_timeout_s = 30;
    config.training.bucket_mib = 40.0 / (1024 * 1024);  // 40 bytes: several buckets, some shared
    setenv("MIXLAB_GRAD_SYNC", mode, 1);
    const int port = free_port();
    std::vector<std::vector<torch::Tensor>> params(2), grads(2);
    std::vector<std::vector<double>> sums(2);
    std::vector<std::string> errors(2);
    auto rank_main = [&](int rank) {
      try {
        mixlab::LaunchEnv env;
        env.rank = rank, env.world_size = 2, env.local_rank = rank, env.local_world_size = 2;
        env.master_addr = "127.0.0.1", env.master_port = port;
        auto dp = mixlab::DataParallel::connect(config, env, torch::kCPU);
        const double r = rank + 1.0;
        auto& p = params[rank];
        p = {torch::full({3}, r), torch::arange(10, torch::kFloat32).reshape({2, 5}) * r, torch::full({4}, -r),
             torch::full({2}, r)};
        for (auto& t : p) t.requires_grad_(true);
        dp->broadcast(p);
        dp->watch_gradients(p);
        // Two micro-batches: the first only accumulates, the second's backward averages.
        // d/dp0 = 5r per micro-batch, d/dp1 = r * x, p2 unused on both ranks (zeros), p3
        // used only by rank 1 (an idle expert on rank 0): its mean is (0 + 2*7) / 2.
        for (int micro = 0; micro < 2; ++micro) {
          auto objective = (p[0] * 5 * r).sum() + (p[1] * torch::arange(10, torch::kFloat32).reshape({2, 5}) * r).sum();
          if (rank == 1) objective = objective + (p[3] * 7).sum();
          dp->before_backward(micro == 0, micro == 1);
          objective.backward();
          dp->after_backward();
        }
        for (const auto& t : p) grads[rank].push_back(t.grad());
        sums[rank] = dp->sum({static_cast<double>(rank), 0.5});
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    };
    std::thread first(rank_main, 0), second(rank_main, 1);
    first.join(), second.join();
    unsetenv("MIXLAB_GRAD_SYNC");
    REQUIRE(errors[0] == "");
    REQUIRE(errors[1] == "");
    for (int rank = 0; rank < 2; ++rank) {
      CAPTURE(rank);
      // Broadcast: rank 0's values everywhere.
      CHECK(torch::equal(params[rank][0].detach(), torch::full({3}, 1.0f)));
      CHECK(torch::equal(params[rank][1].detach(), torch::arange(10, torch::kFloat32).reshape({2, 5})));
      CHECK(torch::equal(params[rank][2].detach(), torch::full({4}, -1.0f)));
      // Mean over ranks of two micro-batches' sums: (2*5*1 + 2*5*2) / 2 = 15, (2x + 4x) / 2 = 3x.
      CHECK(torch::equal(grads[rank][0], torch::full({3}, 15.0f)));
      CHECK(torch::allclose(grads[rank][1], torch::arange(10, torch::kFloat32).reshape({2, 5}) * 3));
      CHECK(torch::equal(grads[rank][2], torch::zeros({4})));
      CHECK(torch::equal(grads[rank][3], torch::full({2}, 7.0f)));
      CHECK(sums[rank] == std::vector<double>{1.0, 1.0});
    }
  }
}

TEST_CASE("distributed: a rank that never joins fails the others within training.dist_timeout_s, named") {
  mixlab::ExperimentConfig config;
  config.training.dist_timeout_s = 2;
  mixlab::LaunchEnv env;
  env.world_size = 2, env.local_world_size = 2, env.master_addr = "127.0.0.1", env.master_port = free_port();
  std::string message;
  try {
    mixlab::DataParallel::connect(config, env, torch::kCPU);
  } catch (const mixlab::DistributedError& e) {
    message = e.what();
  }
  CHECK(message.find("rank 1 never joined") != std::string::npos);
}

TEST_CASE("distributed: 2 ranks with batch B/2 follow 1 process with batch B; the checkpoint resumes at world size 1, 2 and 4") {
  const int steps = 6;
  auto single = scratch("dp-single"), pair = scratch("dp-pair");
  auto r1 = run_command(host_exe() + " run " + tiny() + " --output-dir " + single.string() + settings(8, steps) + plugins());
  INFO(r1.output);
  REQUIRE(r1.exit_code == 0);
  auto r2 = run_command(torchrun(2, "run " + tiny() + " --output-dir " + pair.string() + settings(4, steps)));
  INFO(r2.output);
  REQUIRE(r2.exit_code == 0);
  CHECK(r2.output.find("[rank 1]") != std::string::npos);  // every rank's lines carry its rank
  check_same_run(single, pair, steps, 1e-5);
  // `host run --nproc 2` is its own launcher: the same run as torchrun's.
  auto own = scratch("dp-nproc");
  auto r3 = run_command("env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS " + host_exe() + " run --nproc 2 " + tiny() +
                        " --output-dir " + own.string() + settings(4, steps) + plugins());
  INFO(r3.output);
  REQUIRE(r3.exit_code == 0);
  check_same_run(single, own, steps, 1e-5);
  // The naive gradient synchronisation (all-reduce after backward) gives the overlapped one's
  // numbers bit for bit: the same sums, only launched at other times.
  auto naive = scratch("dp-after-backward");
  auto r4 = run_command("MIXLAB_GRAD_SYNC=after_backward " +
                        torchrun(2, "run " + tiny() + " --output-dir " + naive.string() + settings(4, steps)));
  INFO(r4.output);
  REQUIRE(r4.exit_code == 0);
  check_same_run(pair, naive, steps, 0.0);
  CHECK(read_json(naive / "manifest.json")["distributed"]["grad_sync"] == "after_backward");

  auto m = read_json(pair / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(m["distributed"]["world_size"] == 2);
  CHECK(m["distributed"]["backend"] == "gloo");
  CHECK(m["distributed"]["grad_sync"] == "overlap");
  CHECK(m["distributed"]["buckets"].get<int>() > 1);
  CHECK(m["distributed"]["rank0_allreduce_seconds"].get<double>() > 0);
  REQUIRE(m["distributed"]["ranks"].size() == 2);
  CHECK(m["distributed"]["ranks"][1]["rank"] == 1);
  CHECK(!m["distributed"]["ranks"][1]["host"].get<std::string>().empty());
  CHECK(m["distributed"]["ranks"][1]["aten_threads"] == 1);
  CHECK(m["results"]["tokens_seen"] == read_json(single / "manifest.json")["results"]["tokens_seen"]);
  // Validation is sharded over the ranks and reduced: the single-process numbers.
  CHECK(relative(m["results"]["final_val_loss"], read_json(single / "manifest.json")["results"]["final_val_loss"]) < 1e-5);

  // The world-size-2 checkpoint at step 3 resumes in one process (twice the accumulation keeps
  // the global batch), under torchrun with 2 and with 4 ranks: each continues as the uninterrupted run.
  // At world size 4 each rank reads 2 sequences, so the global batch is again 8.
  for (int world : {1, 2, 4}) {
    auto resumed = scratch("dp-resumed-" + std::to_string(world));
    std::filesystem::copy(pair, resumed, std::filesystem::copy_options::recursive);
    std::filesystem::remove_all(mixlab::checkpoint_dir(resumed, 6));
    std::string args = "run --resume " + resumed.string();
    auto r = world == 1   ? run_command(host_exe() + " " + args + " --set training.grad_accum_steps=2" + plugins())
             : world == 2 ? run_command(torchrun(2, args))
                          : run_command(torchrun(4, args + " --set training.batch_size=2"));
    INFO("world size " << world << ": " << r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("at step 3") != std::string::npos);
    check_same_run(pair, resumed, steps, 1e-5);
  }
}

TEST_CASE("distributed: every rank draws its own dropout masks, and a 2-rank run with dropout resumes bit-identically") {
  // The seed of a micro-batch's draws depends on the rank: the masks of ranks 0 and 1 differ,
  // and the same rank and micro-batch draw the same mask again.
  auto mask = [](int rank, uint64_t micro) {
    mixlab::seed_random_draws(3, rank, micro);
    return torch::dropout(torch::ones({4096}), 0.5, true);
  };
  CHECK(mixlab::random_draws_seed(3, 0, 5) != mixlab::random_draws_seed(3, 1, 5));
  CHECK(!torch::equal(mask(0, 5), mask(1, 5)));
  CHECK(torch::equal(mask(1, 5), mask(1, 5)));
  CHECK(!torch::equal(mask(1, 5), mask(1, 6)));
  CHECK(mixlab::random_draws_seed(3, 0, 5) != mixlab::random_draws_seed(4, 0, 5));

  // End to end: dropout and MoE router jitter (plugin noise from the same seed) on 2 ranks,
  // checkpointed at step 3 and resumed there: the same losses and final weights, bit for bit.
  const int steps = 6;
  auto pair = scratch("dp-dropout"), resumed = scratch("dp-dropout-resumed");
  const std::string noisy = " --set model.dropout=0.1" + moe(", router_jitter=0.1");
  auto r = run_command(torchrun(2, "run " + tiny() + " --output-dir " + pair.string() + settings(4, steps) + noisy));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::filesystem::copy(pair, resumed, std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(mixlab::checkpoint_dir(resumed, 6));
  auto again = run_command(torchrun(2, "run --resume " + resumed.string()));
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK(again.output.find("at step 3") != std::string::npos);
  check_same_run(pair, resumed, steps, 0.0);
  check_same_logs(pair, resumed, 0.0);
}

TEST_CASE("distributed: MoE statistics and validation are reduced over ranks: 2 ranks log what 1 process logs") {
  const int steps = 4;
  const std::string eval = " --set validation.every=2";
  // Statistics that are means over tokens (expert shares, router entropy, z-loss) over the
  // global batch: 2 ranks x 4 sequences log the numbers of 1 process x 8. The balance loss is
  // off here: it is a product of two means per call, so it cannot follow a larger call.
  auto single = scratch("dp-moe-single"), pair = scratch("dp-moe-pair");
  const std::string no_balance = moe(", balance_loss_coef=0.0");
  auto r1 = run_command(host_exe() + " run " + tiny() + " --output-dir " + single.string() + settings(8, steps) + eval +
                        no_balance + plugins());
  INFO(r1.output);
  REQUIRE(r1.exit_code == 0);
  auto r2 = run_command(torchrun(2, "run " + tiny() + " --output-dir " + pair.string() + settings(4, steps) + eval + no_balance));
  INFO(r2.output);
  REQUIRE(r2.exit_code == 0);
  check_same_logs(single, pair, 1e-5, {"/balance_loss"});
  CHECK(read_jsonl(pair / "metrics.jsonl")[0].contains("layers.0.ffn/expert_share"));
  CHECK(read_json(pair / "manifest.json").contains("routing"));  // the load summary of the logged shares

  // With the balance loss on: a step's statistics and aux losses are the mean over every call
  // of the global batch, so 2 ranks x 4 log (and train) what 1 process makes of the same calls,
  // 4 sequences x 2 accumulation steps -- balance loss included. The ranks validate batches of
  // 2 x 4 rows (tiny.toml: 4 batches); the accumulating process, in batches of 4, needs 8 batches
  // to score the same rows in the same calls.
  auto accum = scratch("dp-moe-accum"), pair_balance = scratch("dp-moe-pair-balance");
  auto r3 = run_command(host_exe() + " run " + tiny() + " --output-dir " + accum.string() + settings(4, steps) + eval +
                        moe() + " --set training.grad_accum_steps=2 --set validation.batches=8" + plugins());
  INFO(r3.output);
  REQUIRE(r3.exit_code == 0);
  auto r4 = run_command(torchrun(2, "run " + tiny() + " --output-dir " + pair_balance.string() + settings(4, steps) + eval + moe()));
  INFO(r4.output);
  REQUIRE(r4.exit_code == 0);
  check_same_logs(accum, pair_balance, 1e-5);
  check_same_run(accum, pair_balance, steps, 1e-5);
}

TEST_CASE("distributed: host compare --nproc 2 trains each run data-parallel through the same launcher") {
  auto dir = scratch("dp-compare");
  auto r = run_command("env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS " + host_exe() + " compare " + tiny() +
                       " --seeds 1 --nproc 2 --output-dir " + dir.string() + settings(4, 3) + plugins());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto m = read_json(dir / "tiny" / "seed-0" / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(m["distributed"]["world_size"] == 2);
  CHECK(read_json(dir / "comparison.json")["experiments"][0]["runs_completed"] == 1);
}

TEST_CASE("distributed: host probe --nproc 2 shares each cell's batch between two ranks: the 1-process result") {
  // prefix_mean on one level of in-context recall: the scale's batch of 16 is 8 per rank.
  auto probe = [&](const std::filesystem::path& dir, int nproc) {
    return run_command("env -u WORLD_SIZE -u RANK -u OMP_NUM_THREADS " + host_exe() +
                       " probe --mixer prefix_mean --tasks recall --levels 1 --steps 4 --lr 0.01 --nproc " +
                       std::to_string(nproc) + " --output-dir " + dir.string() + plugins());
  };
  auto one = scratch("dp-probe-1"), two = scratch("dp-probe-2");
  auto r1 = probe(one, 1);
  INFO(r1.output);
  REQUIRE(r1.exit_code == 0);
  auto r2 = probe(two, 2);
  INFO(r2.output);
  REQUIRE(r2.exit_code == 0);
  const auto cell = std::filesystem::path("cells/prefix_mean/recall/base/lr0.01-wd0/seed-0");
  auto a = read_json(one / cell / "result.json"), b = read_json(two / cell / "result.json");
  CHECK(read_json(two / cell / "run" / "manifest.json")["distributed"]["world_size"] == 2);
  CHECK(read_json(two / cell / "run" / "manifest.json")["config"]["training"]["batch_size"] == 8);
  CHECK(a["key"] == b["key"]);  // the same cell: a folder can be continued with another --nproc
  CHECK(b["val_loss"].get<double>() == doctest::Approx(a["val_loss"].get<double>()).epsilon(1e-5));
  CHECK(b["accuracy"].get<double>() == doctest::Approx(a["accuracy"].get<double>()).epsilon(1e-5));
  // A batch that two ranks cannot share is refused before anything trains.
  auto odd = run_command(host_exe() + " probe --mixer prefix_mean --tasks recall --levels 1 --steps 4 --nproc 3 " +
                         "--output-dir " + scratch("dp-probe-3").string() + plugins());
  CHECK(odd.exit_code == 1);
  CHECK(odd.output.find("which 3 processes cannot share equally") != std::string::npos);
}

TEST_CASE("distributed: ranks with different experiments are refused at start-up (plain environment)") {
  auto dir = scratch("dp-mismatch");
  const int port = free_port();
  auto base = " run " + tiny() + " --output-dir " + dir.string() + settings(4, 2) + plugins();
  // Rank 1 runs another learning rate: both refuse, naming rank 1, before anything is written.
  auto r = run_command("(" + plain_env(0, 2, port) + host_exe() + base + " > " + dir.string() + ".0.log 2>&1 & p=$!; " +
                       plain_env(1, 2, port) + host_exe() + base + " --set optimizer.lr=0.02; b=$?; wait $p; a=$?; " +
                       "cat " + dir.string() + ".0.log; echo \"exit $a $b\")");
  INFO(r.output);
  CHECK(r.output.find("rank 1 differs from rank 0 in experiment") != std::string::npos);
  CHECK(r.output.find("exit 1 1") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "manifest.json"));
}

TEST_CASE("distributed: a killed rank stops the other within the timeout, naming it (plain environment)") {
  auto dir = scratch("dp-killed");
  // Rank 1's worker (the child of its `host run` supervisor) is killed once it has logged step 3;
  // rank 0 must fail (not hang) and say which rank died.
  auto r = two_ranks_then(dir, " --set training.dist_timeout_s=30",
                          "pkill -9 -P $p1; wait $p0; a=$?; cat $log0; echo \"exit $a\"");
  INFO(r.output);
  CHECK(r.output.find("rank 1 stopped responding") != std::string::npos);
  CHECK(r.output.find("exit 1") != std::string::npos);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "failed");
  CHECK(m["error"].get<std::string>().find("rank 1") != std::string::npos);
}

TEST_CASE("distributed: a hung rank fails the other after training.dist_timeout_s, naming it (plain environment)") {
  auto dir = scratch("dp-hung");
  // Rank 1's worker is stopped (SIGSTOP) after step 3: rank 0's next collective times out.
  auto r = two_ranks_then(dir, " --set training.dist_timeout_s=3",
                          "pkill -STOP -P $p1; wait $p0; a=$?; pkill -9 -P $p1; cat $log0; echo \"exit $a\"");
  INFO(r.output);
  CHECK(r.output.find("rank 1 stopped responding") != std::string::npos);
  CHECK(r.output.find("exit 1") != std::string::npos);
  CHECK(read_json(dir / "manifest.json")["status"] == "failed");
}

TEST_CASE("distributed: SIGTERM to one rank stops both at the same step; rank 0 checkpoints it (plain environment)") {
  auto dir = scratch("dp-term");
  auto r = two_ranks_then(dir, "", "kill -TERM $p1; wait $p1; b=$?; wait $p0; a=$?; cat $log0 $log1; echo \"exit $a $b\"");
  INFO(r.output);
  CHECK(r.output.find("exit 130 130") != std::string::npos);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "interrupted");
  const int64_t step = m["results"]["steps"];
  // Both ranks name the same step (rank 1 its signal, rank 0 the other rank's), and rank 0's checkpoint is that step.
  const std::regex stopped("interrupted \\([^)]*\\) at step " + std::to_string(step) + "\\b");
  CHECK(std::distance(std::sregex_iterator(r.output.begin(), r.output.end(), stopped), std::sregex_iterator()) >= 2);
  CHECK(std::filesystem::exists(mixlab::checkpoint_dir(dir, step) / "DONE"));
}

}  // TEST_SUITE
