#include "model/mtp_head.hpp"

#include "model/residual_norm.hpp"

namespace mixlab {
namespace {

std::string module_prefix(size_t k) { return "mtp." + std::to_string(k); }  // k from 1

}  // namespace

LayerSlots MtpHead::create_block(const ExperimentConfig& config, const Registry& registry) {
  return create_layers(config, registry).back();
}

int64_t MtpHead::host_params_per_module(const ExperimentConfig& config, const LayerSlots& block) {
  const int64_t d = config.model.d_model, norm = norm_param_count(config.model);
  const int64_t norms = 2 + (block.mixer ? 1 : 0) + (block.ffn ? 1 : 0) + (config.model.norm_position == "pre" ? 1 : 0);
  return norms * norm + 2 * d * d;
}

MtpHead::MtpHead(const ExperimentConfig& config, const Registry& registry, const AddParams& add) {
  const auto& m = config.model;
  const int64_t d = m.d_model;
  // The instances hold configs, not parameters: one set serves every module.
  const LayerSlots block = create_block(config, registry);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.job.seed * 7919ull + 29);
  const uint64_t n_layers = config.layers().size();
  for (size_t k = 1; k <= static_cast<size_t>(m.mtp.depth); ++k) {
    const std::string prefix = module_prefix(k);
    add(norm_params(prefix + ".hnorm", m));
    add(norm_params(prefix + ".enorm", m));
    add({{prefix + ".proj.weight", torch::empty({d, 2 * d}).normal_(0.0, m.init_std, gen), true}});
    for (auto [slot, inst] : {std::pair{"mixer", block.mixer}, std::pair{"ffn", block.ffn}}) {
      if (!inst) continue;
      add(norm_params(prefix + (std::string(slot) == "mixer" ? ".norm1" : ".norm2"), m));
      const uint64_t seed = config.job.seed * 1000003ull + (n_layers + k) * 2 + (std::string(slot) == "ffn");
      add(plugin_init_params(prefix + "." + slot, *inst, seed, m.init_std));
    }
    if (m.norm_position == "pre") add(norm_params(prefix + ".final_norm", m));
    blocks_.push_back(block);
  }
}

MtpHead::Output MtpHead::forward(const Model& model, const torch::Tensor& stream, const torch::Tensor& tokens,
                                 bool training, uint64_t seed) const {
  const auto& m = model.config().model;
  const bool pre = m.norm_position == "pre";
  const int64_t T = tokens.size(1), n_layers = static_cast<int64_t>(model.layers().size());
  auto add_then_norm = model.config().training.fused ? add_norm_fused : add_norm_reference;
  Output out;
  out.aux_loss = torch::zeros({}, stream.options().dtype(torch::kFloat32));
  torch::Tensor h = stream;  // h^{k-1}
  for (size_t k = 1; k <= blocks_.size(); ++k) {
    const std::string prefix = module_prefix(k);
    const int64_t n = T - static_cast<int64_t>(k);
    auto emb = torch::embedding(model.param("embed.weight"), tokens.narrow(1, static_cast<int64_t>(k), n));
    auto joined = torch::cat({model.norm(h.narrow(1, 0, n), prefix + ".hnorm"), model.norm(emb, prefix + ".enorm")}, -1);
    h = torch::linear(joined, model.param(prefix + ".proj.weight"));
    // One layer, as the main model's: pre-norm h + f(norm(h)), post-norm norm(h + f(h)).
    const auto& block = blocks_[k - 1];
    std::vector<std::pair<std::string, std::shared_ptr<PluginInstance>>> slots;
    if (block.mixer) slots.emplace_back("mixer", block.mixer);
    if (block.ffn) slots.emplace_back("ffn", block.ffn);
    auto norm_after = [&](size_t s) {
      if (!pre) return prefix + (slots[s].first == "mixer" ? ".norm1" : ".norm2");
      if (s + 1 < slots.size()) return prefix + ".norm2";
      return prefix + ".final_norm";
    };
    auto x = pre ? model.norm(h, prefix + (slots.front().first == "mixer" ? ".norm1" : ".norm2")) : h;
    for (size_t s = 0; s < slots.size(); ++s) {
      const auto& [slot, inst] = slots[s];
      std::vector<torch::Tensor> params;
      for (const auto& p : inst->params()) params.push_back(model.param(prefix + "." + slot + "." + p.name));
      CallOptions call{training, seed * 1315423911ull + static_cast<uint64_t>(n_layers + static_cast<int64_t>(k)) * 2 +
                                     (slot == "ffn")};
      auto r = inst->forward(x, params, call);
      const std::string norm = norm_after(s);
      auto bias = m.norm == "layernorm" ? model.param(norm + ".bias") : torch::Tensor();
      auto [sum, normed] = add_then_norm(h, torch::dropout(r.y, m.dropout, training), model.param(norm + ".weight"), bias,
                                         m.norm_eps);
      h = pre ? sum : normed;
      x = normed;
      size_t aux = 0, stat = 0;
      for (const auto& side : inst->sides()) {
        const bool is_aux = side.kind == MIXLAB_SIDE_AUX_LOSS;
        auto value = is_aux ? r.aux_losses[aux++] : r.statistics[stat++];
        out.sides.push_back(SideOutput{prefix + "." + slot + "/" + side.name, value, is_aux ? side.coefficient : 0.0,
                                       is_aux, side.kind == MIXLAB_SIDE_TOKEN_STATISTIC});
        if (is_aux && side.coefficient != 0.0) out.aux_loss = out.aux_loss + side.coefficient * value;
      }
    }
    out.features.push_back(x);
  }
  return out;
}

}  // namespace mixlab
