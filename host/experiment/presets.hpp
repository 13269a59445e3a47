// The architecture presets: experiment files under experiments/arch and
// experiments/mini (the EulerStack `arch_*` presets and the expert minis),
// listed in their folders' order (file names carry the walkthrough's order),
// each summarised from its config and `host explain`'s numbers.
#pragma once

#include "experiment/config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace mixlab {

// Folders searched: $MIXLAB_PRESET_PATH (':'-separated), <prefix>/share/mixlab/presets/{arch,mini}
// next to the installed host, and the source tree's experiments/{arch,mini}; the first
// folder that defines a preset name wins.
std::vector<std::filesystem::path> preset_folders();

struct PresetFile {
  std::string name;  // job.name
  std::filesystem::path file;
  ExperimentConfig config;  // as loaded when the folders were listed
};

// Every preset, in folder order then file-name order.
std::vector<PresetFile> find_presets(const std::vector<std::filesystem::path>& folders);

// The preset called `name` (job.name or file stem); throws with the known names when absent.
PresetFile find_preset(const std::vector<std::filesystem::path>& folders, const std::string& name);

// name, level, file, description, references, layers, layout ("hyena x8 > mamba x12"),
// mixers ({"attention": 8, "attention (window)": 24}), moe ("8 experts top-2 on 8/32 layers"
// or "none"), and from `explain` (model/explain.hpp's explain_preset) params_total, params_active,
// train_flops_per_token, decode_state_bytes_bf16_at_max_seq_len, target_params_deviation.
nlohmann::json summarize_preset(const PresetFile& preset, const nlohmann::json& explain);

// Aligned plain-text list, and the Markdown comparison table of `host presets --table`.
std::string presets_list(const std::vector<nlohmann::json>& summaries);
std::string presets_table(const std::vector<nlohmann::json>& summaries);

}  // namespace mixlab
