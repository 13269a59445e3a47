#include "experiment/presets.hpp"

#include "experiment/loader.hpp"
#include "util/human_units.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

// A mixer as the tables count it: the plugin, and whether attention is windowed.
std::string mixer_kind(const PluginChoice& mixer) {
  return (mixer.none ? std::string("none") : mixer.plugin) + (mixer.config.contains("window") ? " (window)" : "");
}

// A layer's mixer kind; parallel streams: "attention (window) + mamba [gated]".
std::string layer_mixer_kind(const LayerTemplate& layer) {
  if (!layer.streams) return mixer_kind(layer.mixer);
  std::string kind;
  for (const auto& s : layer.streams->streams) kind += (kind.empty() ? "" : " + ") + mixer_kind(s.mixer);
  return kind + " [" + layer.streams->merge + "]";
}

std::string moe_strategy(const ExperimentConfig& config) {
  auto layers = config.layers();
  std::set<std::string> kinds;
  int64_t moe_layers = 0;
  for (const auto& l : layers) {
    if (l.ffn.plugin != "moe") continue;
    ++moe_layers;
    auto value = [&](const char* key) {
      return l.ffn.config.contains(key) ? l.ffn.config[key].dump() : std::string("default");
    };
    std::string kind = value("experts") + " experts top-" + value("top_k");
    if (l.ffn.config.value("shared_experts", 0) > 0) kind += " + " + value("shared_experts") + " shared";
    kinds.insert(kind);
  }
  if (moe_layers == 0) return "none";
  std::string s;
  for (const auto& k : kinds) s += (s.empty() ? "" : ", ") + k;
  return s + " on " + std::to_string(moe_layers) + "/" + std::to_string(layers.size()) + " layers";
}

// "hyena x8 > mamba x12 > attn_moe x4" from the schedule; a schedule that repeats a
// group is written once with its count, "(local x3 > global) x6"; overridden layers marked.
std::string layout(const ExperimentConfig& config) {
  const auto& entries = config.model.schedule;
  auto entry = [](const ScheduleEntry& e) {
    return e.template_name + (e.repeat > 1 ? " x" + std::to_string(e.repeat) : "");
  };
  size_t period = entries.size();
  for (size_t p = 1; p < entries.size() && period == entries.size(); ++p) {
    if (entries.size() % p != 0) continue;
    bool repeats = true;
    for (size_t i = p; i < entries.size() && repeats; ++i)
      repeats = entries[i].template_name == entries[i % p].template_name && entries[i].repeat == entries[i % p].repeat;
    if (repeats) period = p;
  }
  std::string s;
  for (size_t i = 0; i < period; ++i) s += (s.empty() ? "" : " > ") + entry(entries[i]);
  if (period < entries.size())
    s = (period > 1 ? "(" + s + ")" : s) + " x" + std::to_string(entries.size() / period);
  if (!config.model.overrides.empty()) s += " (" + std::to_string(config.model.overrides.size()) + " overridden)";
  return s;
}

std::string mixers_text(const nlohmann::json& mixers, int64_t layers) {
  std::string s;
  for (const auto& [kind, n] : mixers.items()) {
    std::ostringstream part;
    part << kind << " " << std::lround(100.0 * n.get<double>() / static_cast<double>(layers)) << "%";
    s += (s.empty() ? "" : ", ") + part.str();
  }
  return s;
}

}  // namespace

std::vector<std::filesystem::path> preset_folders() {
  std::vector<std::filesystem::path> folders;
  if (const char* env = std::getenv("MIXLAB_PRESET_PATH")) {
    std::stringstream ss(env);
    for (std::string p; std::getline(ss, p, ':');)
      if (!p.empty()) folders.emplace_back(p);
  }
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (const char* group : {"arch", "mini"}) {
    if (!ec) folders.push_back(exe.parent_path().parent_path() / "share" / "mixlab" / "presets" / group);
    folders.push_back(std::filesystem::path(MIXLAB_SOURCE_DIR) / "experiments" / group);
  }
  return folders;
}

std::vector<PresetFile> find_presets(const std::vector<std::filesystem::path>& folders) {
  std::vector<PresetFile> presets;
  std::set<std::string> seen;
  for (const auto& folder : folders) {
    if (!std::filesystem::is_directory(folder)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(folder))
      if (entry.path().extension() == ".toml") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto config = load_experiment(f);
      if (seen.insert(config.job.name).second) presets.push_back({config.job.name, f, std::move(config)});
    }
  }
  return presets;
}

PresetFile find_preset(const std::vector<std::filesystem::path>& folders, const std::string& name) {
  auto presets = find_presets(folders);
  for (const auto& p : presets)
    if (p.name == name || p.file.stem() == name) return p;
  std::string known;
  for (const auto& p : presets) known += (known.empty() ? "" : ", ") + p.name;
  throw std::runtime_error("no preset named \"" + name + "\"; known: " + (known.empty() ? "(none found)" : known));
}

nlohmann::json summarize_preset(const PresetFile& preset, const nlohmann::json& report) {
  const ExperimentConfig& config = preset.config;
  auto layers = config.layers();
  nlohmann::json mixers = nlohmann::json::object();
  for (const auto& l : layers) mixers[layer_mixer_kind(l)] = mixers.value(layer_mixer_kind(l), 0) + 1;
  nlohmann::json s{{"name", config.job.name},
                   {"level", config.job.level},
                   {"file", preset.file.string()},
                   {"description", config.job.description},
                   {"references", config.job.references},
                   {"d_model", config.model.d_model},
                   {"max_seq_len", config.model.max_seq_len},
                   {"layers", layers.size()},
                   {"layout", layout(config)},
                   {"mixers", mixers},
                   {"moe", moe_strategy(config)},
                   {"params_total", report["params_total"]},
                   {"params_active", report["params_active"]},
                   {"train_flops_per_token", report["train_flops_per_token"]},
                   {"decode_state_bytes_bf16_at_max_seq_len", report["decode_state_bytes_bf16_at_max_seq_len"]}};
  if (config.job.target_params > 0) {
    s["target_params"] = config.job.target_params;
    s["target_params_deviation"] = report["target_params_deviation"];
  }
  return s;
}

std::string presets_list(const std::vector<nlohmann::json>& summaries) {
  std::ostringstream out;
  // Columns as wide as their widest entry, two spaces apart.
  std::vector<std::array<std::string, 6>> rows{{"preset", "level", "total", "active", "MoE", "mixers"}};
  for (const auto& s : summaries)
    rows.push_back({s["name"].get<std::string>(), s["level"].get<std::string>(), human_count(s["params_total"]),
                    human_count(s["params_active"]), s["moe"].get<std::string>(),
                    mixers_text(s["mixers"], s["layers"])});
  std::array<size_t, 6> width{};
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      bool number = i == 2 || i == 3, last = i + 1 == r.size();
      out << (number ? std::right : std::left) << std::setw(last ? 0 : static_cast<int>(width[i])) << r[i]
          << (last ? "" : "  ");
    }
    out << "\n";
  }
  return out.str();
}

std::string presets_table(const std::vector<nlohmann::json>& summaries) {
  std::ostringstream out;
  out << "| preset | level | d_model | layers | layout | mixers | MoE | total | active | train FLOPs/token | "
         "decode state (bf16, max_seq_len) |\n"
      << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : summaries)
    out << "| " << s["name"].get<std::string>() << " | " << s["level"].get<std::string>() << " | " << s["d_model"]
        << " | " << s["layers"] << " | " << s["layout"].get<std::string>() << " | "
        << mixers_text(s["mixers"], s["layers"]) << " | " << s["moe"].get<std::string>() << " | "
        << human_count(s["params_total"]) << " | " << human_count(s["params_active"]) << " | "
        << human_count(s["train_flops_per_token"]) << " | " << human_bytes(s["decode_state_bytes_bf16_at_max_seq_len"])
        << " (T=" << s["max_seq_len"] << ") |\n";
  return out.str();
}

}  // namespace mixlab
