// `host analyze RUN_DIR`: where a trained MoE model sends its tokens. Every
// layer whose FFN reports the per-token statistic `expert_weights` (B, T, E)
// is counted on validation batches: the token share per expert and layer, per
// token class when the corpus has classes (builtin:grammar), and per label of a
// file of labelled prompts (`label<TAB>text`, as MiniMoE's routing table).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>

namespace mixlab {

struct AnalyzeOptions {
  std::filesystem::path run_dir;
  std::optional<std::filesystem::path> prompts;     // label<TAB>text lines
  std::optional<std::filesystem::path> output_dir;  // default: run_dir
  int64_t batches = 8;                              // validation batches of the run's batch size
};

// Writes routing.json, routing-by-layer.csv, routing-analysis.png and, when
// there are classes / prompts, routing-by-class.csv + expert-by-class.png /
// routing-by-label.csv. Returns the JSON report. Throws std::runtime_error with
// the reason (no MoE layer, bad prompts line with its number, ...).
nlohmann::json analyze_routing(const AnalyzeOptions& options);

// The report printed as tables (per layer; per label when present).
void print_routing_report(const nlohmann::json& report);

}  // namespace mixlab
