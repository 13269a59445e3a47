#include "experiment/memory_estimate.hpp"

#include "experiment/loader.hpp"
#include "util/human_units.hpp"
#include "util/system_info.hpp"

#include <sstream>

namespace mixlab {
namespace {

constexpr double kFloat = 4.0;            // bytes of a float32
constexpr double kSavedPerWidth = 34.0;   // values a block saves per token and unit of width
constexpr double kAdamStates = 2.0;       // exp_avg and exp_avg_sq

// The mixer's head count when its config names one; 1 otherwise.
double heads(const PluginChoice& mixer) {
  auto it = mixer.config.find("n_heads");
  return it != mixer.config.end() && it->is_number_integer() && it->get<int64_t>() > 0 ? it->get<double>() : 1.0;
}

}  // namespace

nlohmann::json MemoryEstimate::to_json() const {
  return {{"weights_bytes", weights},         {"gradients_bytes", gradients}, {"optimizer_bytes", optimizer},
          {"activations_bytes", activations}, {"logits_bytes", logits},       {"total_bytes", total()}};
}

MemoryEstimate estimate_training_memory(const ExperimentConfig& config, const nlohmann::json& report) {
  const double params = report["params_total"].get<double>(), vocab = report["vocab_size"].get<double>();
  const double B = static_cast<double>(config.training.batch_size), T = static_cast<double>(config.data.seq_len),
               d = static_cast<double>(config.model.d_model);
  MemoryEstimate m;
  m.weights = kFloat * params;
  m.gradients = kFloat * params;
  m.optimizer = kAdamStates * kFloat * params;
  const auto layers = config.layers();
  double values = B * T * d * (config.model.positional == "learned" ? 2.0 : 1.0);  // the embeddings
  for (size_t i = 0; i < layers.size() && i < report["layers"].size(); ++i) {
    values += kSavedPerWidth * B * T * d;
    if (!report["layers"][i]["state_grows"].get<bool>()) continue;
    double n_heads = layers[i].streams ? 0.0 : heads(layers[i].mixer);  // parallel streams: every stream's
    if (layers[i].streams)
      for (const auto& s : layers[i].streams->streams) n_heads += heads(s.mixer);
    if (layers[i].streams && layers[i].streams->merge == "cross_attn") n_heads += static_cast<double>(layers[i].streams->merge_heads);
    values += 2.0 * B * n_heads * T * T;
  }
  // Each multi-token prediction module: a layer plus its two normed inputs and their concatenation, and its logits.
  const double mtp = static_cast<double>(config.model.mtp.depth);
  values += mtp * (kSavedPerWidth + 6.0) * B * T * d;
  m.activations = kFloat * values;
  m.logits = 2.0 * kFloat * B * T * vocab * (1.0 + mtp);
  return m;
}

void require_memory_fits(const std::string& experiment_file, const ExperimentConfig& config,
                         const nlohmann::json& report) {
  const auto available = available_memory_bytes();
  const MemoryEstimate m = estimate_training_memory(config, report);
  if (!available || m.total() <= *available) return;
  const auto& c = config;
  std::ostringstream msg;
  msg << "training needs about " << human_bytes(m.total()) << " of memory, this machine has " << human_bytes(*available)
      << " available (estimated before allocating anything):\n"
      << "    weights " << human_bytes(m.weights) << ", gradients " << human_bytes(m.gradients) << ", AdamW state "
      << human_bytes(m.optimizer) << " (" << human_count(report["params_total"].get<double>()) << " parameters)\n"
      << "    activations " << human_bytes(m.activations) << " (" << c.layers().size() << " layers of batch_size "
      << c.training.batch_size << " x seq_len " << c.data.seq_len << " x d_model " << c.model.d_model << ")\n"
      << "    logits " << human_bytes(m.logits) << " (batch_size x seq_len x vocab " << report["vocab_size"]
      << ", and their gradient)\n  reduce ";
  if (m.activations + m.logits >= m.weights + m.gradients + m.optimizer)
    msg << "training.batch_size (training.grad_accum_steps keeps the tokens per step) or data.seq_len";
  else
    msg << "model.d_model or the layers (model.schedule repeats)";
  throw ExperimentError({Diagnostic{SourcePos{experiment_file, 0, 0}, "memory", msg.str()}});
}

}  // namespace mixlab
