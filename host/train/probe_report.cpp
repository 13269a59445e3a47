#include "train/probe_report.hpp"

#include "train/comparison.hpp"
#include "train/plot.hpp"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace mixlab {
namespace {

std::string percent(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100.0 * v;
  return s.str();
}

// "93.1 ± 0.4" (percent), "n/a" without a completed seed.
std::string mean_std(const nlohmann::json& best) {
  if (best.is_null()) return "n/a";
  std::string text = percent(best["mean"].get<double>());
  if (best["n"].get<int64_t>() > 1) text += " ± " + percent(best["std"].get<double>());
  return text;
}

std::string setting_id(const nlohmann::json& key) {
  return key["subject"].get<std::string>() + "\n" + key["task"].get<std::string>() + "\n" +
         key["level"].get<std::string>() + "\n" + key["width"].dump();
}

// The settings' best accuracy for subject, task and level (and width), or null.
const nlohmann::json* find_setting(const nlohmann::json& settings, const nlohmann::json& subject,
                                   const nlohmann::json& task, const nlohmann::json& level, int64_t width) {
  for (const auto& s : settings)
    if (s["subject"] == subject && s["task"] == task && s["level"] == level && s["width"] == width) return &s;
  return nullptr;
}

// Distinct values of `field` over the settings of `task` (or all), in order of appearance.
std::vector<nlohmann::json> distinct(const nlohmann::json& settings, const std::string& field, const std::string& task = "") {
  std::vector<nlohmann::json> out;
  for (const auto& s : settings)
    if ((task.empty() || s["task"] == task) && std::find(out.begin(), out.end(), s[field]) == out.end())
      out.push_back(s[field]);
  return out;
}

}  // namespace

nlohmann::json summarize_probe(const nlohmann::json& cells, nlohmann::json header) {
  // Group the cells by setting, then by grid point, in the order they ran.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const nlohmann::json*>> by_setting;
  for (const auto& c : cells) {
    const auto id = setting_id(c["key"]);
    if (!by_setting.count(id)) order.push_back(id);
    by_setting[id].push_back(&c);
  }
  nlohmann::json settings = nlohmann::json::array();
  for (const auto& id : order) {
    const auto& first = (*by_setting[id].front())["key"];
    nlohmann::json grid = nlohmann::json::array();
    std::map<std::pair<double, double>, std::vector<double>> accuracies;
    std::map<std::pair<double, double>, int64_t> failed;
    std::vector<std::pair<double, double>> points;
    for (const auto* c : by_setting[id]) {
      const std::pair<double, double> point{(*c)["key"]["lr"].get<double>(), (*c)["key"]["weight_decay"].get<double>()};
      if (std::find(points.begin(), points.end(), point) == points.end()) points.push_back(point);
      if ((*c)["status"] == "completed") accuracies[point].push_back((*c)["accuracy"].get<double>());
      else ++failed[point];
    }
    nlohmann::json best;
    for (const auto& point : points) {
      const Spread s = spread(accuracies[point]);
      nlohmann::json g{{"lr", point.first}, {"weight_decay", point.second}, {"accuracies", accuracies[point]},
                       {"failed", failed[point]}, {"n", s.n}, {"mean", s.mean}, {"std", s.std}};
      grid.push_back(g);
      if (s.n > 0 && (best.is_null() || s.mean > best["mean"].get<double>())) best = g;
    }
    settings.push_back({{"subject", first["subject"]}, {"task", first["task"]}, {"level", first["level"]},
                        {"width", first["width"]}, {"options", first["options"]}, {"best", best}, {"grid", grid}});
  }
  // The MAD score: per subject and task (and width), the mean over levels of the best accuracies.
  nlohmann::json scores = nlohmann::json::object();
  for (const auto& subject : distinct(settings, "subject"))
    for (const auto& task : distinct(settings, "task")) {
      double sum = 0;
      int64_t levels = 0;
      // A level without any completed run scores 0, as a model that learned nothing.
      for (const auto& s : settings)
        if (s["subject"] == subject && s["task"] == task) {
          ++levels;
          if (!s["best"].is_null()) sum += s["best"]["mean"].get<double>();
        }
      if (levels > 0) scores[subject.get<std::string>()][task.get<std::string>()] = sum / static_cast<double>(levels);
    }
  header["settings"] = settings;
  header["scores"] = scores;
  header["cells"] = cells;
  return header;
}

std::string probe_markdown(const nlohmann::json& p) {
  std::ostringstream md;
  const auto& settings = p["settings"];
  const auto subjects = distinct(settings, "subject");
  const auto& scale = p["scale"];
  // Steps and batch per task, from the cells (a task's own steps, or its epochs per level).
  std::map<std::string, std::pair<std::set<int64_t>, std::set<int64_t>>> trained;
  for (const auto& c : p["cells"]) {
    auto& [steps, batches] = trained[c["key"]["task"].get<std::string>()];
    steps.insert(c["key"]["steps"].get<int64_t>());
    batches.insert(c["key"]["batch_size"].get<int64_t>());
  }
  const auto range = [](const std::set<int64_t>& v) {
    return std::to_string(*v.begin()) + (v.size() > 1 ? "-" + std::to_string(*v.rbegin()) : "");
  };
  md << "# Probe\n\nScale `" << scale["name"].get<std::string>() << "` (docs/probe.md): a `--mixer` is probed in "
     << scale["blocks"] << " blocks of mixer + SwiGLU MLP at width " << scale["width"]
     << " (MQAR: blocks of the mixer alone, at each width; compression: read out by MAD's autoencoder decoder); "
        "steps x batch per cell:";
  for (const auto& [task, sizes] : trained)
    md << " " << task << " " << range(sizes.first) << " x " << range(sizes.second)
       << (&task == &trained.rbegin()->first ? "." : ",");
  md << " Accuracy (%) on the held-out examples' scored positions, for each setting the best point of "
        "the learning-rate x weight-decay grid by mean over "
     << p["seeds"] << " seed" << (p["seeds"].get<int64_t>() == 1 ? "" : "s")
     << " (mean ± sample std over seeds; grid point in brackets).\n\n";
  for (const auto& subject : p["subjects"])
    md << "- `" << subject["name"].get<std::string>() << "`: " << subject["experiment"].get<std::string>() << "\n";
  md << "\n";

  const auto header_row = [&](const std::string& first) {
    md << "| " << first << " |";
    for (const auto& s : subjects) md << " " << s.get<std::string>() << " |";
    md << "\n|---|";
    for (size_t i = 0; i < subjects.size(); ++i) md << "---|";
    md << "\n";
  };
  const auto cell_text = [&](const nlohmann::json* s) {
    if (!s || s->at("best").is_null()) return std::string("n/a");
    const auto& b = s->at("best");
    std::ostringstream t;
    t << mean_std(b) << " (" << b["lr"].get<double>() << ", " << b["weight_decay"].get<double>() << ")";
    return t.str();
  };

  std::vector<nlohmann::json> mad_tasks, mqar_tasks;
  for (const auto& t : distinct(settings, "task")) (t == "mqar" ? mqar_tasks : mad_tasks).push_back(t);
  if (!mad_tasks.empty()) {
    md << "## MAD tasks (task x difficulty -> accuracy %)\n\n";
    header_row("task, level");
    for (const auto& task : mad_tasks)
      for (const auto& level : distinct(settings, "level", task.get<std::string>())) {
        md << "| " << task.get<std::string>() << ", " << level.get<std::string>() << " |";
        for (const auto& subject : subjects)
          md << " " << cell_text(find_setting(settings, subject, task, level, 0)) << " |";
        md << "\n";
      }
    md << "\n### MAD score (mean over levels, %)\n\n";
    header_row("task");
    for (const auto& task : mad_tasks) {
      md << "| " << task.get<std::string>() << " |";
      for (const auto& subject : subjects)
        md << " " << percent(p["scores"][subject.get<std::string>()][task.get<std::string>()].get<double>()) << " |";
      md << "\n";
    }
    md << "\n";
  }
  if (!mqar_tasks.empty()) {
    md << "## MQAR (length and key-value pairs x width -> accuracy %)\n\n";
    header_row("level, width");
    for (const auto& level : distinct(settings, "level", "mqar"))
      for (const auto& width : distinct(settings, "width", "mqar")) {
        md << "| " << level.get<std::string>() << ", width " << width << " |";
        for (const auto& subject : subjects)
          md << " " << cell_text(find_setting(settings, subject, "mqar", level, width.get<int64_t>())) << " |";
        md << "\n";
      }
    md << "\n";
  }
  int64_t failed = 0;
  for (const auto& c : p["cells"]) failed += c["status"] != "completed";
  md << p["cells"].size() << " cells, " << failed << " failed; cells in `" << p["output_dir"].get<std::string>()
     << "/cells/<subject>/<task>/<level>/[width-N/]lr<lr>-wd<wd>/seed-<s>/` (result.json, worker.log, run/).\n";
  return md.str();
}

std::string plot_probe(const nlohmann::json& p, const std::filesystem::path& png) {
  const auto& settings = p["settings"];
  const auto subjects = distinct(settings, "subject");
  std::vector<std::string> mad_tasks;
  for (const auto& t : distinct(settings, "task"))
    if (t != "mqar") mad_tasks.push_back(t.get<std::string>());
  const bool mqar = !distinct(settings, "width", "mqar").empty();
  const auto folder = png.parent_path();
  std::vector<std::filesystem::path> data_files;
  std::ostringstream gp;
  gp << "set grid ytics\nset key outside bottom center horizontal noenhanced\nset yrange [0:100]\n"
     << "set ylabel 'accuracy (%)'\n";
  if (!mad_tasks.empty() && mqar) gp << "set multiplot layout 1,2\n";
  if (!mad_tasks.empty()) {
    const auto file = folder / ".probe-mad.dat";
    data_files.push_back(file);
    std::ofstream out(file);
    for (const auto& task : mad_tasks) {
      out << task;
      for (const auto& subject : subjects) out << " " << 100.0 * p["scores"][subject.get<std::string>()][task].get<double>();
      out << "\n";
    }
    gp << "set title 'MAD score by task (mean over levels)'\nset style data histograms\n"
       << "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset xtics rotate by -30 noenhanced\n"
       << "plot ";
    for (size_t i = 0; i < subjects.size(); ++i)
      gp << (i ? ", " : "") << "'" << file.string() << "' using " << i + 2 << (i ? "" : ":xtic(1)") << " title '"
         << subjects[i].get<std::string>() << "'";
    gp << "\nunset style\nset style data linespoints\nset xtics norotate\n";
  }
  if (mqar) {
    const auto file = folder / ".probe-mqar.dat";
    data_files.push_back(file);
    std::ofstream out(file);
    std::vector<std::string> titles;
    for (const auto& subject : subjects)
      for (const auto& level : distinct(settings, "level", "mqar")) {
        for (const auto& width : distinct(settings, "width", "mqar")) {
          const auto* s = find_setting(settings, subject, "mqar", level, width.get<int64_t>());
          if (s && !s->at("best").is_null()) out << width << " " << 100.0 * s->at("best")["mean"].get<double>() << "\n";
        }
        out << "\n\n";  // one gnuplot data block per line
        titles.push_back(subject.get<std::string>() + ", " + level.get<std::string>());
      }
    gp << "set title 'MQAR accuracy against width'\nset xlabel 'width (d_model)' noenhanced\nset logscale x 2\nplot ";
    for (size_t i = 0; i < titles.size(); ++i)
      gp << (i ? ", " : "") << "'" << file.string() << "' index " << i << " using 1:2 with linespoints lw 2 pt 7 lc "
         << i / (titles.size() / subjects.size()) + 1 << " dt " << i % (titles.size() / subjects.size()) + 1
         << " title '" << titles[i] << "'";
    gp << "\n";
  }
  if (!mad_tasks.empty() && mqar) gp << "unset multiplot\n";
  const std::string why = run_gnuplot(png, gp.str(), !mad_tasks.empty() && mqar ? 1400 : 900, 560);
  for (const auto& f : data_files) std::filesystem::remove(f);
  return why;
}

}  // namespace mixlab
