#include "model/explain.hpp"

#include "data/probe_dataset.hpp"
#include "experiment/experiment_data.hpp"
#include "experiment/loader.hpp"
#include "experiment/memory_estimate.hpp"
#include "experiment/presets.hpp"
#include "model/model.hpp"
#include "model/mtp_head.hpp"
#include "model/parallel_streams.hpp"
#include "model/readout.hpp"
#include "runtime/registry.hpp"
#include "util/human_units.hpp"

#include <algorithm>
#include <iomanip>
#include <map>
#include <iostream>
#include <sstream>

namespace mixlab {

namespace {

// The vocabulary size an experiment will have, without training a tokenizer.
int64_t planned_vocab_size(const ExperimentConfig& c) {
  if (c.tokenizer.kind == "sentencepiece") return c.tokenizer.vocab_size;
  if (data::is_probe_source(c.data.source)) {
    return open_dataset(c)->tokenizer().vocab_size();  // probe tasks generate on demand: cheap
  }
  return 256;
}

// A mixer that names its same-shape standard attention (ABI 1.2) gets its cache
// per token compared with it: multi-head attention keeps `attention_heads` kv
// heads, GQA with g kv heads g of them. null when not reported.
nlohmann::json kv_cache_comparison(const mixlab_cost& c, int64_t T) {
  if (c.attention_heads <= 0 || !(c.kv_head_bytes_per_token > 0) || !c.state_grows) return nullptr;
  const double per_token = c.state_bytes / static_cast<double>(T);
  return {{"bytes_per_token", per_token},
          {"mha_bytes_per_token", c.attention_heads * c.kv_head_bytes_per_token},
          {"mha_heads", c.attention_heads},
          {"gqa_kv_heads_same_bytes", per_token / c.kv_head_bytes_per_token}};
}

// One line per mixer that reports a KV-cache comparison, in order of first appearance (a
// windowed layer of the same mixer has a bounded cache and no comparison).
void print_kv_cache_comparisons(const nlohmann::json& rows) {
  std::vector<std::string> mixers;
  std::map<std::string, int> layers;
  for (const auto& row : rows)
    if (row.contains("kv_cache") && layers[row["mixer"].get<std::string>()]++ == 0) mixers.push_back(row["mixer"].get<std::string>());
  for (const auto& m : mixers) {
    const auto& kv = (*std::find_if(rows.begin(), rows.end(), [&](const nlohmann::json& r) { return r.contains("kv_cache") && r["mixer"] == m; }))["kv_cache"];
    const double per_token = kv["bytes_per_token"], mha = kv["mha_bytes_per_token"];
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << "\nKV cache per token and layer (bf16), " << m << " (" << layers[m]
         << " layers): " << human_bytes(per_token) << ", against " << human_bytes(mha)
         << " for multi-head attention of the same shape (" << kv["mha_heads"].get<int>() << " kv heads; "
         << mha / per_token << "x less): as much as GQA with " << std::setprecision(2)
         << kv["gqa_kv_heads_same_bytes"].get<double>() << " kv heads";
    std::cout << line.str();
  }
  if (!mixers.empty()) std::cout << "\n";
}

}  // namespace

nlohmann::json explain_report(const ExperimentConfig& config, const Registry& registry) {
  auto layers = create_layers(config, registry);
  const auto templates = config.layers();
  const int64_t d = config.model.d_model, vocab = planned_vocab_size(config), T = config.model.max_seq_len;
  nlohmann::json rows = nlohmann::json::array();
  double total = 0, active = 0, forward_flops = 0, state_bytes = 0;
  bool grows = false;
  const double norm_size = static_cast<double>(norm_param_count(config.model));
  auto cost = [](const std::shared_ptr<PluginInstance>& inst, int64_t t, int bytes) {
    return inst ? inst->cost(t, bytes) : mixlab_cost{};
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& ffn = layers[i].ffn;
    // The layer's norms (and a depth-gating router, streams' projections and merge), as the Model allocates them.
    const double host = static_cast<double>(layer_host_params(layers[i], templates[i], config.model));
    double params = host, layer_active = host;
    for (const auto& slot : layers[i].plugins()) {
      params += static_cast<double>(slot.plugin->n_parameters());
      layer_active += slot.plugin->cost(config.data.seq_len, 4).active_params;
    }
    // The decode state: the mixer's, or every stream's plus a cross-attention merge's cache.
    auto sc = cost(layers[i].mixer, T, 2);
    std::string mixer = layers[i].mixer ? layers[i].mixer->ref().label() : "none";
    if (const auto& streams = templates[i].streams) {
      mixer.clear();
      for (const auto& inst : layers[i].streams) {
        auto c = inst->cost(T, 2);
        sc.state_bytes += c.state_bytes;
        sc.state_grows = sc.state_grows || c.state_grows;
        mixer += (mixer.empty() ? "" : " + ") + inst->ref().label();
      }
      mixer += " [" + streams->merge + "]";
      const double cache = 2.0 * static_cast<double>(parallel_streams_cache_per_token(*streams, d) * T);
      sc.state_bytes += cache;
      sc.state_grows = sc.state_grows || cache > 0;
    }
    total += params;
    active += layer_active;
    forward_flops += layer_forward_flops(layers[i], templates[i], d, config.data.seq_len);
    state_bytes += sc.state_bytes;
    grows = grows || sc.state_grows;
    rows.push_back({{"index", i}, {"mixer", mixer}, {"ffn", ffn ? ffn->ref().label() : "none"},
                    {"params", params}, {"active_params", layer_active},
                    {"decode_state_bytes", sc.state_bytes}, {"state_grows", static_cast<bool>(sc.state_grows)}});
    if (auto kv = kv_cache_comparison(sc, T); !kv.is_null() && !templates[i].streams) rows.back()["kv_cache"] = kv;
    // Mixture-of-depths: FLOPs count the capacity share of tokens; the decode state is an upper bound.
    if (templates[i].depth_gating) rows.back()["depth_gating_capacity"] = templates[i].depth_gating->capacity;
  }
  double embed = static_cast<double>(vocab * d) + (config.model.positional == "learned" ? static_cast<double>(T * d) : 0.0);
  double head = config.model.tie_embeddings ? 0.0 : static_cast<double>(vocab * d);
  double final_norm = config.model.norm_position == "pre" ? norm_size : 0.0;
  const double readout = static_cast<double>(readout_params(config.model));
  total += embed + head + final_norm + readout;
  active += embed + head + final_norm + readout;
  forward_flops += readout_forward_flops(config.model);
  // Multi-token prediction: D more layers of the last layer's kind, each with a projection and the shared head.
  nlohmann::json mtp = nullptr;
  if (config.model.mtp.depth > 0) {
    const auto block = MtpHead::create_block(config, registry);
    const double D = static_cast<double>(config.model.mtp.depth);
    auto mc = cost(block.mixer, config.data.seq_len, 4), fc = cost(block.ffn, config.data.seq_len, 4);
    const double host = static_cast<double>(MtpHead::host_params_per_module(config, block));
    const double module = host + static_cast<double>((block.mixer ? block.mixer->n_parameters() : 0) +
                                                     (block.ffn ? block.ffn->n_parameters() : 0));
    total += D * module;
    active += D * (host + mc.active_params + fc.active_params);
    forward_flops += D * (mc.forward_flops + fc.forward_flops + 4.0 * static_cast<double>(d * d) +
                          2.0 * static_cast<double>(d * vocab));
    mtp = {{"depth", config.model.mtp.depth}, {"loss_weight", config.model.mtp.loss_weight},
           {"mixer", block.mixer ? block.mixer->ref().label() : "none"},
           {"ffn", block.ffn ? block.ffn->ref().label() : "none"}, {"params_per_module", module},
           {"params", D * module}, {"training_only", true}};
  }
  double train_flops = 3.0 * (forward_flops + 2.0 * static_cast<double>(d * vocab));
  nlohmann::json report{{"layers", rows},
                        {"vocab_size", vocab},
                        {"params_total", total},
                        {"params_active", active},
                        {"params_embedding", embed + head},
                        {"train_flops_per_token", train_flops},
                        {"decode_state_bytes_bf16_at_max_seq_len", state_bytes},
                        {"decode_state_bytes_per_token", state_bytes / static_cast<double>(T)},
                        {"decode_state_grows", grows},
                        {"mtp", mtp},
                        {"readout", {{"kind", config.model.readout}, {"params", readout}}}};
  report["training_memory"] = estimate_training_memory(config, report).to_json();
  if (config.job.target_params > 0)
    report["target_params_deviation"] = (total - static_cast<double>(config.job.target_params)) /
                                        static_cast<double>(config.job.target_params);
  return report;
}

void print_explain(const ExperimentConfig& config, const nlohmann::json& r) {
  std::cout << config.job.name << ": d_model " << config.model.d_model << ", max_seq_len " << config.model.max_seq_len
            << ", vocab " << r["vocab_size"] << ", " << config.model.norm << " (" << config.model.norm_position
            << "-norm" << (config.model.residual == "parallel" ? ", parallel residual" : "") << ")\n\n";
  auto mixer_label = [](const nlohmann::json& row) {
    std::string mixer = row["mixer"].get<std::string>();
    if (row.contains("depth_gating_capacity")) {  // mixture-of-depths: "attention [MoD 12.5%]"
      std::ostringstream capacity;
      capacity << 100.0 * row["depth_gating_capacity"].get<double>();
      mixer += " [MoD " + capacity.str() + "%]";
    }
    return mixer;
  };
  size_t width = 34;  // wider for a long label (parallel streams: "attention/sdpa@1.0.0 + mamba/... [gated]")
  for (const auto& row : r["layers"]) width = std::max(width, mixer_label(row).size() + 2);
  std::cout << std::left << std::setw(6) << "layer" << std::setw(static_cast<int>(width)) << "mixer" << std::setw(26) << "ffn"
            << std::setw(10) << "params" << std::setw(10) << "active" << "decode state (bf16, T=" << config.model.max_seq_len
            << ")\n";
  for (const auto& row : r["layers"]) {
    std::cout << std::left << std::setw(6) << row["index"].get<int>() << std::setw(static_cast<int>(width)) << mixer_label(row)
              << std::setw(26) << row["ffn"].get<std::string>() << std::setw(10) << human_count(row["params"])
              << std::setw(10) << human_count(row["active_params"]) << human_bytes(row["decode_state_bytes"])
              << (row["state_grows"].get<bool>() ? " (grows with context)" : "") << "\n";
  }
  if (!r["mtp"].is_null()) {
    const auto& mtp = r["mtp"];
    std::cout << std::left << std::setw(6) << "mtp" << std::setw(static_cast<int>(width)) << mtp["mixer"].get<std::string>() << std::setw(26)
              << mtp["ffn"].get<std::string>() << std::setw(10) << human_count(mtp["params_per_module"])
              << "x " << mtp["depth"] << " multi-token prediction modules: " << human_count(mtp["params"])
              << " parameters, training only (not used by generate; in the totals below)\n";
  }
  if (r["readout"]["kind"] != "lm")
    std::cout << "readout: " << r["readout"]["kind"].get<std::string>() << ", " << human_count(r["readout"]["params"])
              << " parameters (the sequence decoded from the last position; in the totals below)\n";
  print_kv_cache_comparisons(r["layers"]);
  std::cout << "\nparameters: " << human_count(r["params_total"]) << " total, " << human_count(r["params_active"])
            << " active per token, " << human_count(r["params_embedding"]) << " in embeddings/head\n"
            << "training FLOPs per token: " << human_count(r["train_flops_per_token"]) << "\n"
            << "decode state at max_seq_len: " << human_bytes(r["decode_state_bytes_bf16_at_max_seq_len"]) << " per sequence ("
            << human_bytes(r["decode_state_bytes_per_token"]) << " per token)"
            << (r["decode_state_grows"].get<bool>() ? ", grows with the context" : ", constant in the context") << "\n";
  const auto& m = r["training_memory"];
  std::cout << "training memory (estimate): " << human_bytes(m["total_bytes"]) << ": weights "
            << human_bytes(m["weights_bytes"]) << ", gradients " << human_bytes(m["gradients_bytes"]) << ", AdamW "
            << human_bytes(m["optimizer_bytes"]) << ", activations " << human_bytes(m["activations_bytes"]) << ", logits "
            << human_bytes(m["logits_bytes"]) << " (batch_size " << config.training.batch_size << ", seq_len "
            << config.data.seq_len << ")\n";
  if (r.contains("target_params_deviation"))
    std::cout << "target parameters: " << human_count(static_cast<double>(config.job.target_params)) << " ("
              << std::showpos << std::fixed << std::setprecision(1) << 100.0 * r["target_params_deviation"].get<double>()
              << std::noshowpos << "%)\n";
}

nlohmann::json explain_preset(const PresetFile& preset) {
  Registry registry = experiment_registry(preset.config);
  auto problems = check_plugins(preset.config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  return explain_report(preset.config, registry);
}

}  // namespace mixlab
