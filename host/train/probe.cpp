#include "train/probe.hpp"

#include "conformance/runner.hpp"
#include "data/options.hpp"
#include "experiment/loader.hpp"
#include "runtime/registry.hpp"
#include "train/probe_report.hpp"
#include "train/run_folder.hpp"
#include "util/atomic_file.hpp"
#include "util/sha256.hpp"
#include "util/system_info.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

// The conformance checks a probe depends on (docs/probe.md): the descriptor, shapes,
// finite values, gradients equal to finite differences, and causality (a mixer that
// sees the future reads the answers of recall and copying off its input).
const std::vector<std::string> kProbeChecks = {"handshake",      "param_specs",  "shapes_and_dtypes",
                                               "finite_outputs", "gradients_fd", "causality"};

// What is probed: a mixer in the standard probe model, or an experiment's model.
struct Subject {
  std::string name;
  std::filesystem::path experiment;
  bool standard = false;
  std::string plugin;  // the standard model's mixer plugin
};

// Config keys a bundled mixer requires that depend on the width, as width / divisor
// (docs/probe.md): the standard model sets them at every width of a sweep. mla's KV
// latent is compressed at DeepSeek-V2-Lite's ratio, d_c = d_model / 4 (512 of 2048).
const std::map<std::string, std::map<std::string, int64_t>> kWidthKeys = {{"mla", {{"latent_dim", 4}}}};

std::map<std::string, int64_t> width_keys(const std::string& plugin, int64_t width) {
  std::map<std::string, int64_t> keys;
  if (const auto it = kWidthKeys.find(plugin); it != kWidthKeys.end())
    for (const auto& [key, divisor] : it->second) keys[key] = std::max<int64_t>(1, width / divisor);
  return keys;
}

struct Cell {
  const Subject* subject;
  const ProbeTaskPlan* task;
  const ProbeLevel* level;
  int64_t width;  // 0: the subject's
  double lr, weight_decay;
  uint64_t seed;
  int64_t steps, batch;  // batch: the global batch, shared by the ranks
  int64_t ranks;
  std::filesystem::path dir;
};

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// A folder name from a label: letters, digits, '.', '-' and '_' kept, anything else '-'.
std::string folder_name(const std::string& label) {
  std::string out;
  for (char c : label) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ? c : '-';
  return out;
}

std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }  // a TOML basic string

// The standard probe model around one mixer (docs/probe.md): `blocks` blocks of
// pre-norm mixer + SwiGLU MLP (hidden 4 x width), RMSNorm, tied embeddings, AdamW with
// a cosine schedule; data, lengths, steps and the optimizer point are set per cell.
std::string standard_model(const std::string& plugin, const std::optional<std::string>& impl, const ProbeScale& scale) {
  std::ostringstream t;
  t << "# The standard probe model of `host probe` (docs/probe.md), written by host probe.\n"
    << "[job]\nname = \"probe\"\n\n"
    << "[model]\nd_model = " << scale.width << "\nmax_seq_len = 64\nnorm = \"rmsnorm\"\nnorm_position = \"pre\"\n"
    << "tie_embeddings = true\n\n"
    << "[model.templates.block]\nmixer = { plugin = " << quoted(plugin);
  if (impl) t << ", impl = " << quoted(*impl);
  for (const auto& [key, value] : width_keys(plugin, scale.width)) t << ", " << key << " = " << value;
  t << " }\nffn = { plugin = \"mlp\", activation = \"swiglu\" }\n\n"
    << "[[model.schedule]]\ntemplate = \"block\"\nrepeat = " << scale.blocks << "\n\n"
    << "[data]\nsource = \"builtin:recall\"\nseq_len = 64\n\n"
    << "[lr_scheduler]\ndecay_type = \"cosine\"\nmin_lr_factor = 0.01\n\n"
    << "[training]\nsteps = 1\nbatch_size = " << scale.batch_size << "\n\n"
    << "[checkpoint]\nevery = 0\nkeep_last = 1\n";
  return t.str();
}

// The overrides that turn a subject's experiment into one cell.
std::vector<std::string> cell_overrides(const Cell& c) {
  const auto& o = c.level->options;
  const auto length = static_cast<int64_t>(o.at("input_seq_len"));
  const auto val = static_cast<int64_t>(o.at("val_examples"));
  std::vector<std::string> s = {"job.name=probe-" + c.subject->name + "-" + c.task->name,
                                "job.seed=" + std::to_string(c.seed),
                                "data.source=" + c.task->source,
                                "data.seq_len=" + std::to_string(length),
                                "model.max_seq_len=" + std::to_string(length),
                                "data.options={}",
                                "model.readout=" + c.task->readout,
                                "optimizer.lr=" + number(c.lr),
                                "optimizer.weight_decay=" + number(c.weight_decay),
                                "training.steps=" + std::to_string(c.steps),
                                "training.batch_size=" + std::to_string(c.batch / c.ranks),
                                "training.grad_accum_steps=1",
                                "lr_scheduler.warmup_steps=" + std::to_string(c.steps / 10),
                                "validation.every=0",
                                "validation.batches=" + std::to_string((val + c.batch - 1) / c.batch),
                                "checkpoint.every=0",
                                "metrics.log_every=" + std::to_string(std::max<int64_t>(1, c.steps / 10))};
  for (const auto& [key, value] : o) s.push_back("data.options." + key + "=" + number(value));
  if (c.width > 0) {
    s.push_back("model.d_model=" + std::to_string(c.width));
    for (const auto& [key, value] : width_keys(c.subject->plugin, c.width))
      s.push_back("model.templates.block.mixer." + key + "=" + std::to_string(value));
  }
  if (c.task->mixer_only && c.subject->standard) s.push_back("model.templates.block.ffn=\"none\"");
  return s;
}

// What makes a cell's result valid: a completed cell with another key is not reused.
nlohmann::json cell_key(const Cell& c, const std::string& experiment_sha) {
  return {{"subject", c.subject->name}, {"task", c.task->name},   {"level", c.level->label},
          {"options", c.level->options}, {"width", c.width},      {"lr", c.lr},
          {"weight_decay", c.weight_decay}, {"seed", c.seed},     {"steps", c.steps},
          {"batch_size", c.batch},       {"experiment_sha256", experiment_sha}};
}

// Sends this process's stdout and stderr (and so the workers') to a file while alive:
// the terminal shows the probe's progress, the cell keeps its workers' output.
class OutputToFile {
 public:
  explicit OutputToFile(const std::filesystem::path& file) {
    std::cout.flush(), std::cerr.flush(), std::fflush(nullptr);
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(file.string() + ": cannot create the worker log");
    saved_out_ = ::dup(STDOUT_FILENO), saved_err_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~OutputToFile() {
    std::cout.flush(), std::cerr.flush(), std::fflush(nullptr);
    ::dup2(saved_out_, STDOUT_FILENO), ::dup2(saved_err_, STDERR_FILENO);
    ::close(saved_out_), ::close(saved_err_);
  }
  OutputToFile(const OutputToFile&) = delete;
  OutputToFile& operator=(const OutputToFile&) = delete;

 private:
  int saved_out_ = -1, saved_err_ = -1;
};

nlohmann::json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

// --mixer PLUGIN[:IMPL]: a mixer plugin this host can load.
std::pair<std::string, std::optional<std::string>> parse_mixer(const std::string& spec, const Registry& registry) {
  const auto colon = spec.find(':');
  std::string plugin = spec.substr(0, colon);
  std::optional<std::string> impl;
  if (colon != std::string::npos) impl = spec.substr(colon + 1);
  if (plugin.empty() || (impl && impl->empty()))
    throw std::runtime_error("--mixer " + spec + ": expected PLUGIN or PLUGIN:IMPL (host plugins lists them)");
  ImplRef ref;
  try {
    ref = registry.select({plugin, impl, std::nullopt});
  } catch (const SelectionError& e) {
    throw std::runtime_error("--mixer " + spec + ": " + e.what());
  }
  if (ref.family() != "mixer")
    throw std::runtime_error("--mixer " + spec + ": " + ref.label() + " is a " + ref.family() +
                             " plugin, not a sequence mixer (host plugins lists the mixers)");
  return {plugin, impl};
}

// The subject's mixers must load into the model and pass kProbeChecks; a pass is
// remembered in DIR/conformance/, so a resumed probe does not repeat it.
void check_subject(const Subject& subject, const std::vector<std::string>& overrides, const std::filesystem::path& dir) {
  ExperimentConfig config = load_experiment(subject.experiment, overrides);
  Registry registry = experiment_registry(config);
  auto problems = check_plugins(config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  std::set<std::string> done;
  // Every mixer at its width: a layer's, or each of its parallel streams' (their own width, or d_model).
  std::vector<std::pair<PluginChoice, int64_t>> mixers;
  for (const auto& layer : config.layers()) {
    if (!layer.mixer.none) mixers.emplace_back(layer.mixer, config.model.d_model);
    if (layer.streams)
      for (const auto& s : layer.streams->streams) mixers.emplace_back(s.mixer, s.width_or(config.model.d_model));
  }
  for (const auto& [mixer, width] : mixers) {
    if (!done.insert(mixer.label() + mixer.config.dump() + " " + std::to_string(width)).second) continue;
    ImplRef ref = registry.select({mixer.plugin, mixer.impl, mixer.version});
    const std::string id = ref.label() + " " + mixer.config.dump() + (width == config.model.d_model ? "" : " width " + std::to_string(width)) +
                           " " + ref.library->sha256();
    const auto marker = dir / "conformance" / (folder_name(subject.name + "-" + ref.label()) + ".json");
    if (const auto passed = read_json(marker); passed.is_object() && passed.value("passed", "") == id) continue;
    std::cout << "== conformance of " << ref.label() << " (" << subject.name << "): ";
    for (const auto& c : kProbeChecks) std::cout << c << (&c == &kProbeChecks.back() ? "\n" : ", ");
    std::cout << std::flush;
    conformance::RunnerOptions run;
    run.target = ref.library->path().string();
    run.impl = ref.impl->impl;
    run.base.config_json = mixer.config.dump();
    run.base.d_model = width;
    run.only = kProbeChecks;
    const int code = conformance::run_conformance(run);
    if (code == 3) throw std::runtime_error("host probe: interrupted during the conformance checks");
    if (code != 0)
      throw std::runtime_error(subject.name + ": the mixer " + ref.label() +
                               " failed the conformance checks above; host probe trains only mixers that pass "
                               "them (host conformance " + mixer.plugin + " runs the whole suite)");
    std::filesystem::create_directories(marker.parent_path());
    write_file_atomic(marker, nlohmann::json{{"passed", id}, {"checks", kProbeChecks}}.dump(2) + "\n");
  }
}

// The tasks of the suite with the command line's narrowing applied.
std::vector<ProbeTaskPlan> plan_tasks(const ProbeOptions& o, const ProbeScale& scale) {
  if (o.suite != "mad" && o.suite != "mqar" && o.suite != "all")
    throw std::runtime_error("--suite: expected mad, mqar or all, got \"" + o.suite + "\"");
  std::vector<ProbeTaskPlan> all;
  if (o.suite != "mqar") all.insert(all.end(), scale.mad.begin(), scale.mad.end());
  if (o.suite != "mad") all.insert(all.end(), scale.mqar.begin(), scale.mqar.end());
  std::vector<std::string> names;
  for (const auto& t : all) names.push_back(t.name);
  for (const auto& wanted : o.tasks)
    if (std::find(names.begin(), names.end(), wanted) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw std::runtime_error("--tasks: no task \"" + wanted + "\" in suite " + o.suite +
                               data::did_you_mean(wanted, names) + "; its tasks are " + list);
    }
  std::vector<ProbeTaskPlan> tasks;
  for (auto t : all) {
    if (!o.tasks.empty() && std::find(o.tasks.begin(), o.tasks.end(), t.name) == o.tasks.end()) continue;
    if (o.levels > 0 && std::ssize(t.levels) > o.levels) t.levels.resize(static_cast<size_t>(o.levels));
    if (!o.lrs.empty()) t.lrs = o.lrs;
    if (!o.weight_decays.empty()) t.weight_decays = o.weight_decays;
    if (o.steps > 0) t.steps = o.steps;
    tasks.push_back(std::move(t));
  }
  return tasks;
}

// Trains one cell unless its result.json exists; returns that result.
nlohmann::json run_cell(const Cell& c, const nlohmann::json& key, const ProbeOptions& o, const std::string& progress) {
  const auto result_file = c.dir / "result.json";
  nlohmann::json result = read_json(result_file);
  if (result.is_object()) {
    if (result.value("key", nlohmann::json()) != key)
      throw std::runtime_error(c.dir.string() + " holds a cell run with other settings (" +
                               result.value("key", nlohmann::json()).dump() +
                               "); give another --output-dir, or remove that folder to run it again");
    std::cout << progress << ": " << result.value("status", "?") << ", accuracy "
              << (result["accuracy"].is_number() ? number(result["accuracy"].get<double>()) : "n/a") << " (reused)"
              << std::endl;
    return result;
  }
  const auto run_dir = c.dir / "run";
  std::filesystem::remove_all(run_dir);  // an interrupted attempt: the cell starts again
  std::filesystem::create_directories(c.dir);
  const bool tty = isatty(STDOUT_FILENO);
  if (tty) std::cout << progress << " ..." << std::flush;
  const auto start = std::chrono::steady_clock::now();
  int code = 1;
  std::string error;
  {
    OutputToFile quiet(c.dir / "worker.log");
    try {
      code = o.train({c.subject->experiment, cell_overrides(c), std::nullopt, run_dir});
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::cout << "\r\33[2K";
  if (code == 130) {
    std::cout << progress << ": interrupted" << std::endl;
    throw std::runtime_error("host probe: interrupted in " + c.dir.string() +
                             "; run the same command again to continue (completed cells are reused)");
  }
  const nlohmann::json manifest = read_manifest(run_dir);
  const auto section = [&](const char* name) {
    return manifest.is_object() ? manifest.value(name, nlohmann::json::object()) : nlohmann::json::object();
  };
  result = {{"key", key}, {"status", "failed"}, {"accuracy", nullptr}, {"seconds", seconds}};
  const bool completed = manifest.is_object() && manifest.value("status", "") == "completed";
  if (code == 0 && completed && section("results").contains("probe_accuracy")) {
    result["status"] = "completed";
    result["accuracy"] = section("results")["probe_accuracy"];
    result["val_loss"] = section("results").value("final_val_loss", 0.0);
    result["train_seconds"] = section("performance").value("train_seconds", 0.0);
    result["params_total"] = section("model").value("params_total", 0.0);
  } else {
    result["error"] = !error.empty()                   ? error
                      : section("error").is_string() ? section("error").get<std::string>()
                                                       : "exit code " + std::to_string(code) + " (see worker.log)";
  }
  write_file_atomic(result_file, result.dump(2) + "\n");
  std::cout << progress << ": " << result["status"].get<std::string>();
  if (result["accuracy"].is_number()) std::cout << ", accuracy " << number(result["accuracy"].get<double>());
  else std::cout << " (" << result["error"].get<std::string>() << ")";
  std::cout << " (" << static_cast<int64_t>(seconds) << " s)" << std::endl;
  return result;
}

}  // namespace

nlohmann::json run_probe(const ProbeOptions& o) {
  if (o.mixers.empty() == o.experiments.empty())
    throw std::runtime_error("host probe: give --mixer PLUGIN[:IMPL] or --experiment FILE (one kind, repeatable)");
  if (o.seeds < 1) throw std::runtime_error("--seeds must be >= 1");
  if (o.nproc < 1) throw std::runtime_error("--nproc must be >= 1");
  ProbeScale scale = probe_scale(o.full);
  if (o.steps > 0) scale.steps = o.steps;
  if (!o.widths.empty()) scale.mqar_widths = o.widths;
  const std::vector<ProbeTaskPlan> tasks = plan_tasks(o, scale);
  const auto dir = o.output_dir.empty() ? std::filesystem::path("runs") / ("probe-" + utc_now("%Y%m%dT%H%M%SZ"))
                                        : o.output_dir;
  std::filesystem::create_directories(dir);

  std::vector<Subject> subjects;
  std::set<std::string> names;
  if (!o.mixers.empty()) {
    Registry registry = Registry::discover();
    for (const auto& spec : o.mixers) {
      auto [plugin, impl] = parse_mixer(spec, registry);
      Subject s{folder_name(plugin + (impl ? "-" + *impl : "")), {}, true, plugin};
      s.experiment = std::filesystem::absolute(dir / "subjects" / (s.name + ".toml"));
      std::filesystem::create_directories(s.experiment.parent_path());
      write_file_atomic(s.experiment, standard_model(plugin, impl, scale));
      subjects.push_back(s);
    }
  } else {
    for (const auto& file : o.experiments) subjects.push_back({folder_name(file.stem().string()), std::filesystem::absolute(file), false, {}});
  }
  for (const auto& s : subjects)
    if (!names.insert(s.name).second) throw std::runtime_error("host probe: \"" + s.name + "\" is given twice");

  // Every cell, in the order they run: subject, task, level, width, grid point, seed.
  std::vector<Cell> cells;
  for (const auto& s : subjects)
    for (const auto& t : tasks)
      for (const auto& level : t.levels)
        for (int64_t width : t.width_sweep ? scale.mqar_widths : std::vector<int64_t>{0})
          for (double lr : t.lrs)
            for (double wd : t.weight_decays)
              for (int64_t i = 0; i < o.seeds; ++i) {
                const uint64_t seed = o.first_seed + static_cast<uint64_t>(i);
                auto cell_dir = dir / "cells" / s.name / t.name / folder_name(level.label);
                if (width > 0) cell_dir /= "width-" + std::to_string(width);
                cell_dir /= "lr" + number(lr) + "-wd" + number(wd);
                cell_dir /= "seed-" + std::to_string(seed);
                const int64_t batch = scale.batch_for(level);
                if (batch % o.nproc != 0)
                  throw std::runtime_error("host probe --nproc " + std::to_string(o.nproc) + ": " + t.name + " (" +
                                           level.label + ") trains batches of " + std::to_string(batch) +
                                           " sequences, which " + std::to_string(o.nproc) +
                                           " processes cannot share equally; give an --nproc that divides it");
                cells.push_back({&s, &t, &level, width, lr, wd, seed, scale.steps_for(t, level), batch, o.nproc,
                                 cell_dir});
              }
  if (cells.empty()) throw std::runtime_error("host probe: nothing to run (check --tasks and --levels)");

  // Refuse a subject before training anything.
  for (const auto& s : subjects) {
    const Cell* first = nullptr;
    for (const auto& c : cells)
      if (c.subject == &s) {
        first = &c;
        break;
      }
    check_subject(s, cell_overrides(*first), dir);
  }

  std::map<std::string, std::string> experiment_sha;
  for (const auto& s : subjects) {
    std::ifstream in(s.experiment);
    std::stringstream text;
    text << in.rdbuf();
    experiment_sha[s.name] = sha256_string(text.str());
  }
  std::cout << "== host probe: " << cells.size() << " cells (" << subjects.size() << " subject"
            << (subjects.size() == 1 ? "" : "s") << ", scale " << scale.name << ") in " << dir.string() << std::endl;
  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < cells.size(); ++i) {
    const Cell& c = cells[i];
    std::ostringstream progress;
    progress << "[" << i + 1 << "/" << cells.size() << "] " << c.subject->name << " " << c.task->name << " ("
             << c.level->label << (c.width > 0 ? ", width " + std::to_string(c.width) : "") << ") lr " << number(c.lr)
             << " wd " << number(c.weight_decay) << " seed " << c.seed;
    auto key = cell_key(c, experiment_sha[c.subject->name]);
    auto r = run_cell(c, key, o, progress.str());
    r["dir"] = std::filesystem::relative(c.dir, dir).string();
    results.push_back(r);
  }

  nlohmann::json header{{"suite", o.suite},
                        {"scale", {{"name", scale.name}, {"width", scale.width}, {"blocks", scale.blocks},
                                   {"batch_size", scale.batch_size}, {"steps", scale.steps},
                                   {"mqar_widths", scale.mqar_widths}}},
                        {"seeds", o.seeds},
                        {"first_seed", o.first_seed},
                        {"output_dir", dir.string()},
                        {"subjects", nlohmann::json::array()}};
  for (const auto& s : subjects)
    header["subjects"].push_back({{"name", s.name}, {"experiment", s.experiment.string()}, {"standard_model", s.standard}});
  nlohmann::json probe = summarize_probe(results, header);
  write_file_atomic(dir / "probe.json", probe.dump(2) + "\n");
  write_file_atomic(dir / "probe.md", probe_markdown(probe));
  const std::string plot_problem = plot_probe(probe, dir / "probe.png");
  if (!plot_problem.empty()) std::cerr << "warning: no probe.png: " << plot_problem << std::endl;
  return probe;
}

}  // namespace mixlab
