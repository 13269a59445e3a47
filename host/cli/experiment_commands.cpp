// `host run`, `host validate`, `host explain` and `host schema`.
#include "cli/commands.hpp"
#include "cli/option_checks.hpp"
#include "data/dataset.hpp"
#include "experiment/loader.hpp"
#include "experiment/memory_estimate.hpp"
#include "experiment/schema.hpp"
#include "launch/run_supervisor.hpp"
#include "model/explain.hpp"
#include "model/model.hpp"
#include "runtime/registry.hpp"
#include "train/ab_compare.hpp"
#include "train/trainer.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

namespace mixlab::cli {
namespace {

struct ExperimentArgs {
  std::string file;
  std::vector<std::string> sets;
};

void add_experiment_args(CLI::App* cmd, ExperimentArgs& a, bool required = true) {
  auto* opt = cmd->add_option("experiment", a.file, "experiment TOML file");
  if (required) opt->required();
  cmd->add_option("--set", a.sets, "override a field: key=value (repeatable), e.g. training.steps=100")
      ->type_name("KEY=VALUE");
}

int validate(const ExperimentArgs& a) {
  ExperimentConfig config = load_experiment(a.file, a.sets);
  Registry registry = experiment_registry(config);
  auto problems = check_plugins(config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  require_memory_fits(a.file, config, explain_report(config, registry));
  std::cout << a.file << ": ok (" << config.layers().size() << " layers)\n";
  return 0;
}

}  // namespace

void add_experiment_commands(CLI::App& app, Action& action) {
  static ExperimentArgs run_args, validate_args, explain_args;
  static std::string resume, output_dir, init_from;
  static int64_t nproc = 1, profile_steps = 0;
  static bool worker = false;
  auto* run = app.add_subcommand("run", "train and evaluate an experiment; writes a run folder under runs/");
  add_experiment_args(run, run_args, false);
  run->add_option("--resume", resume, "continue the run in RUN_DIR from its newest complete checkpoint");
  run->add_option("--output-dir", output_dir, "run folder (default runs/<name>-<utc>-<id>)");
  run->add_option("--nproc", nproc, "training processes on this machine, started with torchrun's environment")
      ->check(CLI::PositiveNumber);
  // The supervisor starts the training itself as `host run --worker` (docs/fault-model.md).
  run->add_flag("--worker", worker)->group("");
  run->add_option("--init-from", init_from,
                  "start from the weights of a compile, import or run folder (its newest checkpoint); fresh optimizer");
  run->add_option("--profile-steps", profile_steps,
                  "profile K training steps after the first with LibTorch's profiler: profile.txt (ops by self CPU "
                  "time) and profile.json (Chrome trace) in the run folder")
      ->check(CLI::NonNegativeNumber);
  run->callback([&] {
    action = [&] {
      if (run_args.file.empty() && resume.empty()) throw std::runtime_error("host run: give an experiment file or --resume RUN_DIR");
      RunOptions o{run_args.file, run_args.sets, std::nullopt, std::nullopt, std::nullopt};
      if (!resume.empty()) o.resume = resume;
      if (!output_dir.empty()) o.run_dir = output_dir;
      if (!init_from.empty()) o.init_from = init_from;
      o.profile_steps = profile_steps;
      return worker ? run_experiment(o) : supervise_run(o, nproc);
    };
  });

  auto* val = app.add_subcommand("validate", "check an experiment file (and its plugin configs) without running it");
  add_experiment_args(val, validate_args);
  val->callback([&] { action = [&] { return validate(validate_args); }; });

  static bool as_json = false;
  auto* explain = app.add_subcommand("explain", "layer table, parameters, FLOPs and decode state, without allocating");
  add_experiment_args(explain, explain_args);
  explain->add_flag("--json", as_json, "print the report as JSON");
  explain->callback([&] {
    action = [&] {
      ExperimentConfig config = load_experiment(explain_args.file, explain_args.sets);
      Registry registry = experiment_registry(config);
      auto problems = check_plugins(config, registry);
      if (!problems.empty()) throw ExperimentError(problems);
      auto report = explain_report(config, registry);
      if (as_json) std::cout << report.dump(2) << "\n";
      else print_explain(config, report);
      return 0;
    };
  });

  static AbOptions ab;
  static std::string ab_output;
  auto* abc = app.add_subcommand("ab", "A/B: run two implementations of one plugin on identical weights and compare");
  abc->add_option("experiment", ab.experiment, "experiment TOML file")->required();
  abc->add_option("--swap", ab.swap, "plugin=implA:implB, e.g. attention=reference:flash")->required();
  abc->add_option("--set", ab.overrides, "override a field: key=value (repeatable)")->type_name("KEY=VALUE");
  abc->add_option("--repeats", ab.repeats, "interleaved timing rounds")->check(CLI::Range(int64_t{1}, int64_t{10'000}));
  abc->add_option("--train", ab.train_steps, "also train both copies for N steps from the same initialisation")
      ->check(CLI::Range(int64_t{0}, limits::kSteps));
  abc->add_option("--dtype", ab.dtype, "float32 | float64")->check(CLI::IsMember({"float32", "float64"}));
  abc->add_option("--tolerance", ab.tolerance, "relative RMS bound for outputs and gradients")
      ->check(finite_number())
      ->check(CLI::NonNegativeNumber);
  abc->add_option("--output", ab_output, "write the report as JSON");
  abc->callback([&] {
    action = [&] {
      if (!ab_output.empty()) ab.output = ab_output;
      return run_ab(ab);
    };
  });

  auto* schema = app.add_subcommand("schema", "print the experiment key reference (Markdown)");
  schema->callback([&] { action = [] { std::cout << schema_markdown(); return 0; }; });
}

}  // namespace mixlab::cli
