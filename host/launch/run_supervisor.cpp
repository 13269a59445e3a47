#include "launch/run_supervisor.hpp"

#include "experiment/loader.hpp"
#include "launch/failure_manifest.hpp"
#include "launch/run_lock.hpp"
#include "launch/torchrun_env.hpp"
#include "launch/worker_group.hpp"
#include "runtime/registry.hpp"
#include "train/launch_env.hpp"
#include "train/run_folder.hpp"
#include "util/interrupt_signals.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <iostream>

namespace mixlab {
namespace {

constexpr double kStopGraceSeconds = 5;  // SIGTERM to SIGKILL when workers are stopped

// Every rank must find the same folder without talking to the others (a default name has a random part).
std::filesystem::path new_run_dir(const RunOptions& options, const ExperimentConfig& config,
                                  const std::optional<LaunchEnv>& launcher) {
  if (options.run_dir) return *options.run_dir;
  if (launcher && config.job.output_dir.empty()) {
    if (!launcher->run_id.empty()) return std::filesystem::path("runs") / (config.job.name + "-" + launcher->run_id);
    throw std::runtime_error("host run with WORLD_SIZE = " + std::to_string(launcher->world_size) +
                             ": every rank must name the same run folder; give --output-dir (or job.output_dir, "
                             "or a launcher run id: torchrun --rdzv-id)");
  }
  return default_run_dir(config);
}

// The worker: this executable, `host run --worker` on the folder made for it.
std::vector<std::string> worker_argv(const RunOptions& options, const std::filesystem::path& run_dir) {
  std::vector<std::string> argv{std::filesystem::read_symlink("/proc/self/exe").string(), "run", "--worker"};
  if (options.resume) argv.insert(argv.end(), {"--resume", run_dir.string()});
  else argv.push_back(options.experiment.string());
  // On --resume, --set adds to the run's overrides (docs/distributed.md: the global batch at a new world size).
  for (const auto& s : options.overrides) argv.insert(argv.end(), {"--set", s});
  if (options.profile_steps > 0) argv.insert(argv.end(), {"--profile-steps", std::to_string(options.profile_steps)});
  if (options.resume) return argv;
  if (options.init_from) argv.insert(argv.end(), {"--init-from", options.init_from->string()});
  argv.insert(argv.end(), {"--output-dir", run_dir.string()});
  return argv;
}

// The exit code and the manifest after the workers ended.
class Conclusion {
 public:
  Conclusion(const std::filesystem::path& run_dir, const ExperimentConfig& config, bool writer, bool created)
      : run_dir_(run_dir), config_(config), writer_(writer), created_(created) {}

  int operator()(const GroupOutcome& outcome) {
    bool started =
        std::any_of(outcome.workers.begin(), outcome.workers.end(), [](const WorkerEnd& w) { return w.last; });
    bool discard = !started && created_;  // a new run whose training never started leaves no folder
    if (outcome.failed) {
      const WorkerEnd& w = outcome.workers[*outcome.failed];
      int code = outcome.timed_out ? kExitStepTimeout : w.signal ? kExitWorkerKilled : w.exit_code;
      // Timeouts and signals are the supervisor's to report; a worker that exited has said why.
      bool ours = outcome.timed_out || w.signal;
      if (ours) log::error(outcome.failure);
      std::optional<int64_t> step = w.last ? std::optional<int64_t>(w.last->step) : std::nullopt;
      if (discard)
        discard_unstarted();
      else if (ours || manifest_status() == "running")
        record({"failed", outcome.failure, outcome.timed_out ? 0 : w.signal, step});
      return code;
    }
    if (!outcome.forwarded) return 0;
    // Interrupted: workers that had not installed their handlers yet (set-up) died by the signal.
    std::string interrupted = "interrupted (" + signal_name(outcome.forwarded) + ")";
    if (!started) log::error(interrupted + " during start-up");
    if (discard)
      discard_unstarted();
    else if (manifest_status() == "running")
      record({"interrupted", interrupted + (started ? "" : " during start-up"), 0, std::nullopt});
    for (const auto& w : outcome.workers)
      if (w.exit_code != 0) return 130;
    return 0;
  }

  // A new run whose training never started leaves no folder behind.
  void discard_unstarted() {
    if (!writer_ || !created_) return;
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);
    if (!ec) log::info("no training step ran: removed " + run_dir_.string());
  }

 private:
  std::string manifest_status() const { return read_manifest(run_dir_).value("status", ""); }

  void record(const WorkerEndRecord& r) {
    if (!writer_) return;
    try {
      record_worker_end(run_dir_, config_.job.name, r);
      log::add_file_sink((run_dir_ / "train.log").string());
      log::error("manifest.json: " + r.status + ": " + r.error);
    } catch (const std::exception& e) {
      log::error("could not record the worker's end in manifest.json: " + std::string(e.what()));
    }
  }

  std::filesystem::path run_dir_;
  const ExperimentConfig& config_;
  bool writer_, created_;
};

}  // namespace

int supervise_run(const RunOptions& options, int64_t nproc) {
  InterruptSignals signals;  // from here on a stop signal is noted, acted on between the steps below
  auto launcher = LaunchEnv::from_environment();
  if (nproc < 1) throw std::runtime_error("--nproc must be >= 1");
  if (launcher && nproc > 1)
    throw std::runtime_error("--nproc: RANK and WORLD_SIZE are already set by a launcher, which starts the processes");
  const bool writer = !launcher || launcher->rank == 0;  // creates and locks the folder, records failures

  RunInputs inputs = options.resume ? resume_inputs(*options.resume) : RunInputs{options.experiment, {}};
  inputs.overrides.insert(inputs.overrides.end(), options.overrides.begin(), options.overrides.end());
  ExperimentConfig config = load_experiment(inputs.experiment, inputs.overrides);
  auto problems = check_plugins(config, experiment_registry(config));
  if (!problems.empty()) throw ExperimentError(problems);

  auto interrupted = [&] {
    log::error("interrupted (" + signals.name() + ") during start-up");
    return 130;
  };
  if (signals.requested()) return interrupted();
  std::filesystem::path run_dir = options.resume ? *options.resume : new_run_dir(options, config, launcher);
  std::optional<RunLock> lock;
  bool created = false;
  if (writer && options.resume) lock.emplace(run_dir);
  if (writer && !options.resume) {
    create_run_folder(run_dir, inputs, [&](const std::filesystem::path& staged) {
      lock.emplace(staged);
      carry_tokenizer_file(config, staged, inputs.overrides);
    });
    created = true;
  }
  Conclusion conclude(run_dir, config, writer, created);
  if (signals.requested()) {
    conclude.discard_unstarted();
    return interrupted();
  }

  std::vector<WorkerCommand> commands;
  int port = nproc > 1 ? free_port() : 0;
  for (int64_t rank = 0; rank < nproc; ++rank) {
    WorkerCommand c{worker_argv(options, run_dir), {}};
    if (nproc > 1) c.env = torchrun_env(rank, nproc, port);
    commands.push_back(std::move(c));
  }
  SupervisionOptions supervision{config.training.step_timeout_s, kStopGraceSeconds};
  return conclude(supervise_workers(commands, supervision, signals));
}

}  // namespace mixlab
