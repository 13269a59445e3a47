// `host run` as a supervisor over worker processes (docs/fault-model.md):
// stop signals end a run with a checkpoint, a signal during set-up leaves no
// folder, a worker killed by a signal or a hung step marks the manifest
// failed, a locked run folder refuses a second run, and the reusable
// supervise_workers API stops a group when one worker fails. Several
// processes per test, so an entry of its own in ctest (`supervise`).
#include "host_test_helpers.hpp"
#include "launch/torchrun_env.hpp"
#include "launch/worker_group.hpp"
#include "train/checkpoint.hpp"

#include <doctest/doctest.h>

#include <csignal>

using mixlab::test::cache_args;
using mixlab::test::host;
using mixlab::test::host_command;
using mixlab::test::read_json;
using mixlab::test::scratch;

namespace {

// The tiny experiment with its mixer replaced by fault_at_step (tests/plugins/fault_at_step.cpp).
std::string faulty_run(const std::filesystem::path& dir, const std::string& fault, int64_t step,
                       const std::string& extra = "") {
  return "run " + mixlab::test::tiny_experiment() + " --output-dir " + dir.string() +
         " --set model.templates.block.mixer.plugin=fault_at_step --set model.templates.block.mixer.fault=" + fault +
         " --set model.templates.block.mixer.step=" + std::to_string(step) +
         " --set training.steps=20 --set checkpoint.every=5 --set validation.every=0" + extra + cache_args();
}

// `host run --resume DIR` finishes the 20-step run.
void check_resumes_to_completion(const std::filesystem::path& dir) {
  auto resumed = host("run --resume " + dir.string());
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  auto m = read_json(dir / "manifest.json");
  CHECK(m["status"] == "completed");
  CHECK(m["results"]["steps"] == 20);
}

std::vector<mixlab::WorkerCommand> shell_workers(const std::vector<std::string>& scripts) {
  std::vector<mixlab::WorkerCommand> out;
  for (const auto& s : scripts) out.push_back({{"/bin/sh", "-c", s}, {}});
  return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("supervise") {
  TEST_CASE("supervise: SIGTERM and SIGHUP stop a run with a checkpoint at the current step, and --resume completes") {
    for (const char* signal : {"SIGTERM", "SIGHUP"}) {
      CAPTURE(signal);
      // At its 13th step the worker signals the supervisor, which forwards the signal to it.
      auto dir = scratch(std::string("stop-") + signal);
      std::string fault = std::string(signal) == "SIGTERM" ? "sigterm_parent" : "sighup_parent";
      auto r = host(faulty_run(dir, fault, 12));
      INFO(r.output);
      CHECK(r.exit_code == 130);
      auto m = read_json(dir / "manifest.json");
      CHECK(m["status"] == "interrupted");
      CHECK(contains(m["error"].get<std::string>(), signal));
      int64_t step = m["results"]["steps"];
      CHECK(step >= 13);
      CHECK(step < 20);
      CHECK(std::filesystem::exists(mixlab::checkpoint_dir(dir, step) / "DONE"));

      check_resumes_to_completion(dir);
    }
  }

  TEST_CASE("supervise: a signal during the worker's set-up leaves no run folder") {
    auto dir = scratch("stop-setup");
    auto r = host(faulty_run(dir, "sigterm_parent", -1));
    INFO(r.output);
    CHECK(r.exit_code == 130);
    CHECK(contains(r.output, "interrupted (SIGTERM) during start-up"));
    CHECK_FALSE(std::filesystem::exists(dir));
    CHECK_FALSE(std::filesystem::exists(dir.string() + ".tmp"));
  }

  TEST_CASE("supervise: a worker killed by a signal marks the manifest failed with the signal and the last step") {
    struct Case {
      const char* fault;
      int64_t step;
      const char* signal;
    };
    std::filesystem::path segfaulted;
    for (auto c : {Case{"segfault", 12, "SIGSEGV"}, Case{"abort", 7, "SIGABRT"}, Case{"kill", 3, "SIGKILL"}}) {
      CAPTURE(c.fault);
      auto dir = scratch(std::string("crash-") + c.fault);
      if (segfaulted.empty()) segfaulted = dir;
      auto r = host(faulty_run(dir, c.fault, c.step));
      INFO(r.output);
      CHECK(r.exit_code == 4);
      auto m = read_json(dir / "manifest.json");
      CHECK(m["status"] == "failed");
      CHECK(m["signal"]["name"] == c.signal);
      CHECK(m["last_completed_step"] == c.step);
      CHECK(contains(m["error"].get<std::string>(), std::string("worker killed by signal ") +
                                                        std::to_string(m["signal"]["number"].get<int>()) + " (" +
                                                        c.signal + ") during step " + std::to_string(c.step + 1)));
      CHECK(contains(r.output, c.signal));
    }
    // The crash left the run resumable from its last checkpoint (step 10; the fault would come 12 steps later).
    check_resumes_to_completion(segfaulted);
  }

  TEST_CASE("supervise: a hung step fails after training.step_timeout_s, and the locked folder refuses a second run") {
    auto dir = scratch("hang");
    // The run hangs in its 4th step; while it does, a second `host run --resume` on its folder is refused.
    std::string script =
        host_command(faulty_run(dir, "hang", 3, " --set training.step_timeout_s=2")) + " > " + dir.string() +
        ".log 2>&1 & first=$!; n=0; "
        "while [ ! -d " +
        dir.string() + " ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; " +
        host_command("run --resume " + dir.string()) + " 2>&1; echo \"second: $?\"; wait $first; echo \"first: $?\"";
    auto r = mixlab::test::run_command(script);
    std::ifstream log(dir.string() + ".log");
    std::string first_output((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    INFO(r.output, first_output);
    CHECK(contains(r.output, dir.string() + " is in use by another host run (pid "));
    CHECK(contains(r.output, "second: 1"));
    CHECK(contains(r.output, "first: 5"));
    auto m = read_json(dir / "manifest.json");
    CHECK(m["status"] == "failed");
    CHECK(m["error"] == "step 4 did not finish within training.step_timeout_s = 2 s");
    CHECK(m["last_completed_step"] == 3);
    CHECK(contains(first_output, "step 4 did not finish"));
  }

  TEST_CASE("supervise_workers: one worker killed by a signal stops the others, and the failure names its rank") {
    mixlab::InterruptSignals signals;
    auto outcome = mixlab::supervise_workers(
        shell_workers({"exec sleep 60", "exec sleep 60", "sleep 0.2; kill -SEGV $$"}), {0, 0.5}, signals);
    REQUIRE(outcome.failed);
    CHECK(*outcome.failed == 2);
    CHECK(outcome.failure == "rank 2: worker killed by signal 11 (SIGSEGV) during set-up");
    REQUIRE(outcome.workers.size() == 3);
    for (int rank : {0, 1}) {
      CHECK(outcome.workers[rank].stopped);
      CHECK(outcome.workers[rank].signal == SIGTERM);
    }
    CHECK_FALSE(outcome.timed_out);

    // A worker that exits with an error is a failure too; SIGKILL follows SIGTERM after the grace period.
    auto stubborn = mixlab::supervise_workers(
        shell_workers({"trap '' TERM; sleep 60 & wait; sleep 60", "sleep 0.3; exit 7"}), {0, 0.3}, signals);
    REQUIRE(stubborn.failed);
    CHECK(stubborn.failure == "rank 1: worker exited with code 7 during set-up");
    CHECK(stubborn.workers[0].signal == SIGKILL);
  }

  TEST_CASE("supervise_workers: a heartbeat phase past the time limit fails; stop signals are forwarded") {
    mixlab::InterruptSignals signals;
    auto hung = mixlab::supervise_workers(shell_workers({"echo 'train 4' >&$MIXLAB_HEARTBEAT_FD; exec sleep 60"}),
                                          {0.5, 0.3}, signals);
    REQUIRE(hung.failed);
    CHECK(hung.timed_out);
    CHECK(hung.failure == "step 5 did not finish within training.step_timeout_s = 0.5 s");
    REQUIRE(hung.workers[0].last);
    CHECK(hung.workers[0].last->step == 4);

    // A signal to the supervisor reaches every worker; ending by it (or with 130) is an interruption, not a failure.
    std::raise(SIGTERM);
    auto stopped = mixlab::supervise_workers(
        shell_workers({"trap 'exit 130' TERM; sleep 60 & wait", "trap 'exit 130' TERM; sleep 60 & wait"}), {}, signals);
    CHECK_FALSE(stopped.failed);
    CHECK(stopped.forwarded == SIGTERM);
  }

  TEST_CASE("supervise_workers: --nproc workers get torchrun's environment") {
    mixlab::InterruptSignals signals;
    std::vector<mixlab::WorkerCommand> workers;
    setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
    for (int rank : {0, 1}) {
      auto env = mixlab::torchrun_env(rank, 2, 29123);
      std::string check =
          "[ \"$RANK\" = " + std::to_string(rank) + " ] && [ \"$LOCAL_RANK\" = " + std::to_string(rank) +
          " ] && [ \"$WORLD_SIZE\" = 2 ] && [ \"$LOCAL_WORLD_SIZE\" = 2 ] && [ \"$GROUP_RANK\" = 0 ] && "
          "[ \"$MASTER_ADDR\" = 127.0.0.1 ] && [ \"$MASTER_PORT\" = 29123 ] && "
          "[ -z \"${TORCHELASTIC_USE_AGENT_STORE+set}\" ]";
      workers.push_back({{"/bin/sh", "-c", check}, env});
    }
    auto outcome = mixlab::supervise_workers(workers, {}, signals);
    unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    CHECK_MESSAGE(!outcome.failed, outcome.failure);
    CHECK(mixlab::free_port() > 0);
  }

}  // TEST_SUITE
