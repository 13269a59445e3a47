#include "train/comparison.hpp"

#include "experiment/loader.hpp"
#include "train/run_folder.hpp"
#include "train/trainer.hpp"
#include "util/atomic_file.hpp"
#include "util/human_units.hpp"
#include "util/system_info.hpp"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

namespace mixlab {
namespace {

// The per-run numbers a comparison reads from a run's manifest.
const std::vector<std::pair<std::string, std::string>> kMetrics = {
    {"final_val_ppl", "final validation perplexity"},
    {"final_train_loss", "final train loss"},
    {"train_seconds", "train time (s)"},
    {"wall_time_s", "wall time (s)"},
    {"tok_per_s", "tokens/s"},
    {"load_std", "MoE load std"},
    {"dead_experts", "dead experts"}};

// value() returns the type of its default: a double NaN keeps the manifest's doubles whole.
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

nlohmann::json run_numbers(const nlohmann::json& m) {
  nlohmann::json r{{"status", m.value("status", "missing")}};
  if (m.contains("results")) {
    r["final_val_ppl"] = m["results"].value("final_val_ppl", kMissing);
    r["final_train_loss"] = m["results"].value("final_train_loss", kMissing);
  }
  r["wall_time_s"] = m.value("wall_time_s", kMissing);
  if (m.contains("performance")) {
    r["tok_per_s"] = m["performance"].value("tok_per_s", kMissing);
    r["train_seconds"] = m["performance"].value("train_seconds", kMissing);
  }
  if (m.contains("model")) {
    r["params_total"] = m["model"].value("params_total", 0.0);
    r["params_active"] = m["model"].value("params_active", 0.0);
  }
  if (m.contains("routing") && !m["routing"].empty()) {
    double std_sum = 0, dead = 0;
    for (const auto& [layer, l] : m["routing"].items()) {
      std_sum += l.value("load_std", 0.0);
      dead += static_cast<double>(l.value("dead_experts", nlohmann::json::array()).size());
    }
    r["load_std"] = std_sum / static_cast<double>(m["routing"].size());  // mean over MoE layers
    r["dead_experts"] = dead;                                           // summed over MoE layers
  }
  return r;
}

std::string fmt(double v, int precision = 3) {
  std::ostringstream s;
  if (std::isnan(v)) return "n/a";
  double a = std::fabs(v);
  if (a >= 1000) s << std::fixed << std::setprecision(0) << v;
  else s << std::setprecision(precision) << std::defaultfloat << v;
  return s.str();
}

std::string mean_std(const nlohmann::json& s) {
  if (s.is_null()) return "n/a";
  return fmt(s["mean"].get<double>(), 4) + " ± " + fmt(s["std"].get<double>(), 2);
}

Spread from_json(const nlohmann::json& j) { return {j["mean"].get<double>(), j["std"].get<double>(), j["n"].get<int64_t>()}; }

}  // namespace

std::string comparison_markdown(const nlohmann::json& c) {
  std::ostringstream md;
  const auto& exps = c["experiments"];
  md << "# Comparison\n\n"
     << exps.size() << " experiments x " << c["seeds"].size() << " seeds (" << c["seeds"].dump()
     << "); same data, steps and schedule for every experiment at a given seed.";
  if (!c["overrides"].empty()) md << " Overrides for all: `" << c["overrides"].dump() << "`.";
  md << " Mean ± sample standard deviation across seeds.\n\n"
     << "| experiment | params (total / active) | runs ok |";
  for (const auto& [key, label] : kMetrics) md << " " << label << " |";
  md << "\n|---|---|---|";
  for (size_t i = 0; i < kMetrics.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& e : exps) {
    md << "| " << e["name"].get<std::string>() << " | " << human_count(e.value("params_total", 0.0)) << " / "
       << human_count(e.value("params_active", 0.0)) << " | " << e["runs_completed"] << "/" << e["runs"].size() << " |";
    for (const auto& [key, label] : kMetrics) md << " " << mean_std(e["summary"].value(key, nlohmann::json())) << " |";
    md << "\n";
  }
  md << "\n## Against the baseline (" << exps[0]["name"].get<std::string>() << ")\n\n"
     << "A difference is *within the spread across seeds* when it is at most two standard errors of the "
        "difference, 2·sqrt(s_a²/n_a + s_b²/n_b).\n\n";
  for (size_t i = 1; i < exps.size(); ++i)
    for (const char* key : {"final_val_ppl", "final_train_loss"}) {
      if (!exps[i]["vs_baseline"].contains(key)) continue;
      const auto& d = exps[i]["vs_baseline"][key];
      md << "- " << exps[i]["name"].get<std::string>() << ", " << (std::string(key) == "final_val_ppl" ? "validation perplexity" : "train loss")
         << ": " << mean_std(exps[i]["summary"][key]) << " vs " << mean_std(exps[0]["summary"][key])
         << "; difference " << std::showpos << fmt(d["difference"].get<double>(), 3) << std::noshowpos << " ("
         << std::showpos << fmt(100.0 * d["relative"].get<double>(), 3) << "%" << std::noshowpos << "), 2 SE = "
         << fmt(d["two_standard_errors"].get<double>(), 3) << ": **"
         << (d["within_spread"].get<bool>() ? "within the spread across seeds" : "beyond the spread across seeds")
         << "**.\n";
    }
  md << "\nRuns: `" << c["output_dir"].get<std::string>() << "/<experiment>/seed-<seed>/` (manifest.json, metrics.jsonl, "
        "loss.png, checkpoints).\n";
  return md.str();
}

Spread spread(const std::vector<double>& values) {
  Spread s;
  s.n = static_cast<int64_t>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  }
  return s;
}

nlohmann::json compare_means(const Spread& a, const Spread& b) {
  double diff = b.mean - a.mean;
  double se = std::sqrt(a.std * a.std / static_cast<double>(std::max<int64_t>(1, a.n)) +
                        b.std * b.std / static_cast<double>(std::max<int64_t>(1, b.n)));
  return {{"difference", diff},
          {"relative", a.mean != 0 ? diff / a.mean : NAN},
          {"two_standard_errors", 2 * se},
          {"within_spread", std::fabs(diff) <= 2 * se}};
}

nlohmann::json run_comparison(const CompareOptions& options) {
  if (options.experiments.empty()) throw std::runtime_error("host compare: give at least one experiment file");
  if (options.seeds < 1) throw std::runtime_error("--seeds must be >= 1");
  // Check every file before training anything.
  std::vector<std::string> names;
  for (const auto& f : options.experiments) {
    load_experiment(f, options.overrides);
    std::string stem = f.stem().string();
    if (std::find(names.begin(), names.end(), stem) != names.end())
      throw std::runtime_error(f.string() + ": two experiments named \"" + stem + "\" (file names must differ)");
    names.push_back(stem);
  }
  auto dir = options.output_dir.empty() ? std::filesystem::path("runs") / ("compare-" + utc_now("%Y%m%dT%H%M%SZ")) : options.output_dir;
  std::filesystem::create_directories(dir);
  nlohmann::json seeds = nlohmann::json::array();
  for (int64_t i = 0; i < options.seeds; ++i) seeds.push_back(options.first_seed + static_cast<uint64_t>(i));

  nlohmann::json experiments = nlohmann::json::array();
  for (size_t x = 0; x < options.experiments.size(); ++x) {
    nlohmann::json e{{"name", names[x]},
                     {"file", std::filesystem::absolute(options.experiments[x]).string()},
                     {"runs", nlohmann::json::array()}};
    for (const auto& seed : seeds) {
      auto run_dir = dir / names[x] / ("seed-" + seed.dump());
      auto manifest = read_manifest(run_dir);
      if (manifest.is_null() || manifest.value("status", "") != "completed") {
        std::filesystem::remove_all(run_dir);
        auto overrides = options.overrides;
        overrides.push_back("job.seed=" + seed.dump());
        std::cout << "== " << names[x] << ", seed " << seed << " -> " << run_dir.string() << std::endl;
        int code = 1;
        try {
          code = options.train({options.experiments[x], overrides, std::nullopt, run_dir});
        } catch (const std::exception& err) {
          std::cerr << names[x] << " seed " << seed << ": " << err.what() << "\n";
        }
        if (code == 130)
          throw std::runtime_error("compare: interrupted during " + names[x] + ", seed " + seed.dump() +
                                   "; run the same command again to continue (completed runs are reused)");
        manifest = read_manifest(run_dir);
      }
      auto r = run_numbers(manifest.is_null() ? nlohmann::json::object() : manifest);
      r["seed"] = seed;
      r["run_dir"] = run_dir.string();
      e["runs"].push_back(r);
    }
    int64_t completed = 0;
    nlohmann::json summary = nlohmann::json::object();
    for (const auto& [key, label] : kMetrics) {
      std::vector<double> v;
      for (const auto& r : e["runs"])
        if (r["status"] == "completed" && r.contains(key) && r[key].is_number() && !std::isnan(r[key].get<double>()))
          v.push_back(r[key].get<double>());
      if (v.empty()) continue;
      auto s = spread(v);
      summary[key] = {{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
    }
    for (const auto& r : e["runs"]) {
      if (r["status"] != "completed") continue;
      ++completed;
      e["params_total"] = r.value("params_total", 0.0);
      e["params_active"] = r.value("params_active", 0.0);
    }
    e["runs_completed"] = completed;
    e["summary"] = summary;
    experiments.push_back(e);
  }
  for (size_t x = 1; x < experiments.size(); ++x) {
    nlohmann::json vs = nlohmann::json::object();
    for (const char* key : {"final_val_ppl", "final_train_loss", "train_seconds", "wall_time_s", "tok_per_s"})
      if (experiments[0]["summary"].contains(key) && experiments[x]["summary"].contains(key))
        vs[key] = compare_means(from_json(experiments[0]["summary"][key]), from_json(experiments[x]["summary"][key]));
    experiments[x]["vs_baseline"] = vs;
  }
  nlohmann::json comparison{{"seeds", seeds},
                            {"overrides", options.overrides},
                            {"output_dir", dir.string()},
                            {"baseline", names[0]},
                            {"experiments", experiments}};
  write_file_atomic(dir / "comparison.json", comparison.dump(2) + "\n");
  write_file_atomic(dir / "comparison.md", comparison_markdown(comparison));
  return comparison;
}

}  // namespace mixlab
