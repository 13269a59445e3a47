// `host presets`, `host compile` and `host compare`: the architecture presets,
// initialised models without training, and multi-seed comparisons.
#include "cli/commands.hpp"
#include "cli/option_checks.hpp"
#include "experiment/loader.hpp"
#include "experiment/presets.hpp"
#include "launch/run_supervisor.hpp"
#include "model/explain.hpp"
#include "runtime/registry.hpp"
#include "train/comparison.hpp"
#include "train/compile_model.hpp"
#include "train/probe.hpp"
#include "util/human_units.hpp"

#include <iostream>

namespace mixlab::cli {
namespace {

struct PresetsArgs {
  std::vector<std::string> dirs;  // replaces the default folders
  bool table = false;
  bool json = false;
  std::string show;
};

std::vector<std::filesystem::path> folders(const PresetsArgs& a) {
  if (a.dirs.empty()) return preset_folders();
  return {a.dirs.begin(), a.dirs.end()};
}

int list_presets(const PresetsArgs& a) {
  std::vector<nlohmann::json> summaries;
  for (const auto& p : find_presets(folders(a))) summaries.push_back(summarize_preset(p, explain_preset(p)));
  if (summaries.empty()) throw std::runtime_error("no presets found (looked in experiments/arch and experiments/mini)");
  if (a.json) std::cout << nlohmann::json(summaries).dump(2) << "\n";
  else std::cout << (a.table ? presets_table(summaries) : presets_list(summaries));
  return 0;
}

int show_preset(const PresetsArgs& a) {
  auto preset = find_preset(folders(a), a.show);
  auto report = explain_preset(preset);
  auto summary = summarize_preset(preset, report);
  if (a.json) {
    std::cout << summary.dump(2) << "\n";
    return 0;
  }
  std::cout << summary["name"].get<std::string>() << " (" << summary["level"].get<std::string>() << ")\n"
            << preset.file.string() << "\n\n"
            << summary["description"].get<std::string>() << "\n\n"
            << "layout: " << summary["layout"].get<std::string>() << "\nMoE: " << summary["moe"].get<std::string>()
            << "\n";
  if (!summary["references"].empty()) {
    std::cout << "\nreferences:\n";
    for (const auto& r : summary["references"]) std::cout << "  - " << r.get<std::string>() << "\n";
  }
  std::cout << "\n";
  print_explain(preset.config, report);
  return 0;
}

}  // namespace

void add_study_commands(CLI::App& app, Action& action) {
  static PresetsArgs presets;
  auto* pr = app.add_subcommand("presets", "list the architecture presets (experiments/arch, experiments/mini)");
  pr->add_flag("--table", presets.table, "one Markdown table comparing every preset");
  pr->add_flag("--json", presets.json, "print JSON");
  pr->add_option("--dir", presets.dirs, "preset folder(s) instead of the default ones")->type_name("DIR");
  auto* show = pr->add_subcommand("show", "one preset: description, references, layer table and parameters");
  show->add_option("name", presets.show, "preset name (job.name or file name)")->required();
  // CLI11 runs this callback after show's: keep show's action when it was given.
  pr->callback([&, show] {
    if (!show->parsed()) action = [&] { return list_presets(presets); };
  });
  show->callback([&] { action = [&] { return show_preset(presets); }; });

  static std::string compile_file, compile_dir;
  static std::vector<std::string> compile_sets;
  auto* comp = app.add_subcommand("compile", "write an experiment's initialised model without training "
                                             "(safetensors weights, resolved config, explain report)");
  comp->add_option("experiment", compile_file, "experiment TOML file")->required();
  comp->add_option("--output-dir", compile_dir, "new folder to write")->required();
  comp->add_option("--set", compile_sets, "override a field: key=value (repeatable)")->type_name("KEY=VALUE");
  comp->callback([&] {
    action = [&] {
      int64_t n = compile_experiment(compile_file, compile_sets, compile_dir);
      std::cout << compile_dir << ": " << human_count(static_cast<double>(n))
                << " parameters in model.safetensors; config.json, explain.json, explain.txt\n";
      return 0;
    };
  });

  static CompareOptions compare;
  static std::vector<std::string> compare_files;
  static std::string compare_dir;
  auto* cmp = app.add_subcommand("compare", "train experiments with several seeds each; mean ± std, "
                                            "comparison.md and comparison.json");
  cmp->add_option("experiments", compare_files, "experiment TOML files (the first is the baseline)")->required();
  cmp->add_option("--seeds", compare.seeds, "seeds per experiment")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cmp->add_option("--first-seed", compare.first_seed, "seeds are first-seed, first-seed + 1, ...");
  cmp->add_option("--set", compare.overrides, "override a field in every experiment: key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmp->add_option("--output-dir", compare_dir, "comparison folder (default runs/compare-<utc>)");
  static int64_t compare_nproc = 1;
  cmp->add_option("--nproc", compare_nproc, "training processes per run (data parallel, as host run --nproc)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmp->callback([&] {
    action = [&] {
      compare.experiments.assign(compare_files.begin(), compare_files.end());
      compare.output_dir = compare_dir;
      compare.train = [](const RunOptions& run) { return supervise_run(run, compare_nproc); };
      auto c = run_comparison(compare);
      std::cout << "\n" << comparison_markdown(c);
      for (const auto& e : c["experiments"])
        if (e["runs_completed"].get<size_t>() != e["runs"].size()) return 1;
      return 0;
    };
  });

  static ProbeOptions probe;
  static std::vector<std::string> probe_files;
  static std::string probe_dir;
  auto* pb = app.add_subcommand("probe", "synthetic architecture probes (the MAD suite, zoology's MQAR sweep) for "
                                         "any mixer: probe.md, probe.json, probe.png (docs/probe.md)");
  pb->add_option("--suite", probe.suite, "mad, mqar or all")->check(CLI::IsMember({"mad", "mqar", "all"}));
  pb->add_option("--mixer", probe.mixers, "a mixer plugin in the standard probe model (repeatable)")
      ->type_name("PLUGIN[:IMPL]");
  pb->add_option("--experiment", probe_files, "probe this experiment's model instead (repeatable)")
      ->type_name("FILE")
      ->check(regular_file());
  pb->add_option("--seeds", probe.seeds, "seeds per cell")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  pb->add_option("--first-seed", probe.first_seed, "seeds are first-seed, first-seed + 1, ...");
  pb->add_flag("--full", probe.full, "the papers' scale (width 128, their grids; for a GPU) instead of the CPU default");
  pb->add_option("--output-dir", probe_dir, "probe folder (default runs/probe-<utc>); an existing one is continued");
  pb->add_option("--tasks", probe.tasks, "only these tasks of the suite (repeatable)")->type_name("TASK");
  pb->add_option("--levels", probe.levels, "only the first N difficulty levels of each task")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  pb->add_option("--steps", probe.steps, "steps per cell instead of the scale's")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  pb->add_option("--lr", probe.lrs, "the learning rates of the grid instead of the scale's (repeatable)")
      ->check(CLI::PositiveNumber & finite_number());
  pb->add_option("--wd", probe.weight_decays, "the weight decays of the grid instead of the scale's (repeatable)")
      ->check(CLI::NonNegativeNumber & finite_number());
  pb->add_option("--widths", probe.widths, "MQAR widths instead of the scale's (repeatable)")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  pb->add_option("--nproc", probe.nproc, "training processes per cell (data parallel, as host run --nproc)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  pb->callback([&] {
    action = [&] {
      probe.experiments.assign(probe_files.begin(), probe_files.end());
      probe.output_dir = probe_dir;
      probe.train = [](const RunOptions& run) { return supervise_run(run, probe.nproc); };
      auto result = run_probe(probe);
      std::cout << "\n" << probe_markdown(result);
      for (const auto& c : result["cells"])
        if (c["status"] != "completed") return 1;
      return 0;
    };
  });
}

}  // namespace mixlab::cli
