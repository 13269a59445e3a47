#include "model/model.hpp"

#include "model/mtp_head.hpp"
#include "runtime/host_api.hpp"

namespace mixlab {

std::vector<LayerSlots> create_layers(const ExperimentConfig& config, const Registry& registry) {
  std::vector<LayerSlots> layers;
  for (const auto& layer : config.layers()) {
    auto make = [&](const PluginChoice& c) -> std::shared_ptr<PluginInstance> {
      if (c.none) return nullptr;
      return PluginInstance::create(registry.select({c.plugin, c.impl, c.version}), config.model.d_model,
                                    config.model.max_seq_len, c.config.dump());
    };
    layers.push_back(LayerSlots{make(layer.mixer), make(layer.ffn)});
  }
  return layers;
}

Model::Model(const ExperimentConfig& config, const Registry& registry, int64_t vocab_size, torch::Device device)
    : config_(config), vocab_(vocab_size), device_(device), layers_(create_layers(config, registry)) {
  const auto& m = config.model;
  const int64_t d = m.d_model;
  torch::NoGradGuard no_grad;
  // One generator for the host's own parameters; plugins' parameters are seeded per layer.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.job.seed * 7919ull + 17);
  auto add = [&](const std::string& name, torch::Tensor t, bool decay) {
    index_[name] = params_.size();
    params_.push_back(NamedParam{name, t.to(device_).requires_grad_(true), decay});
  };
  auto normal = [&](std::vector<int64_t> shape) {
    return torch::empty(shape, torch::kFloat32).normal_(0.0, m.init_std, gen);
  };
  auto add_norm_params = [&](const std::string& prefix) {
    add(prefix + ".weight", torch::ones({d}), false);
    if (m.norm == "layernorm") add(prefix + ".bias", torch::zeros({d}), false);
  };
  add("embed.weight", normal({vocab_, d}), false);
  if (m.positional == "learned") add("pos_embed.weight", normal({m.max_seq_len, d}), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::string prefix = "layers." + std::to_string(i);
    if (layers_[i].mixer) {
      add_norm_params(prefix + ".norm1");
      sublayers_.push_back({i, "mixer", layers_[i].mixer, prefix + ".norm1"});
    }
    if (layers_[i].ffn) {
      add_norm_params(prefix + ".norm2");
      sublayers_.push_back({i, "ffn", layers_[i].ffn, prefix + ".norm2"});
    }
    for (auto [slot, inst] : {std::pair{"mixer", layers_[i].mixer}, std::pair{"ffn", layers_[i].ffn}}) {
      if (!inst) continue;
      uint64_t seed = config.job.seed * 1000003ull + i * 2 + (std::string(slot) == "ffn");
      auto values = inst->init_params(torch::kFloat32, torch::kCPU, seed, m.init_std);
      for (size_t p = 0; p < values.size(); ++p)
        add(prefix + "." + slot + "." + inst->params()[p].name, values[p].detach(), inst->params()[p].weight_decay());
    }
  }
  if (m.norm_position == "pre") add_norm_params("final_norm");
  if (!m.tie_embeddings) add("lm_head.weight", normal({vocab_, d}), true);
  if (m.mtp.depth > 0) mtp_ = std::make_unique<MtpHead>(config, registry, add);
}

Model::~Model() = default;

int64_t Model::n_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.tensor.numel();
  return n;
}

const torch::Tensor& Model::param(const std::string& name) const { return params_.at(index_.at(name)).tensor; }

std::vector<torch::Tensor> Model::slot_params(size_t layer, const std::string& slot) const {
  const auto& inst = slot == "mixer" ? layers_[layer].mixer : layers_[layer].ffn;
  std::vector<torch::Tensor> out;
  std::string prefix = "layers." + std::to_string(layer) + "." + slot + ".";
  for (const auto& p : inst->params()) out.push_back(param(prefix + p.name));
  return out;
}

torch::Tensor Model::norm(const torch::Tensor& x, const std::string& prefix) const {
  const auto& m = config_.model;
  if (m.norm == "layernorm")
    return torch::layer_norm(x, {m.d_model}, param(prefix + ".weight"), param(prefix + ".bias"), m.norm_eps);
  return torch::rms_norm(x, {m.d_model}, param(prefix + ".weight"), m.norm_eps);
}

AddNorm Model::add_norm(const torch::Tensor& h, const torch::Tensor& branch, size_t k) const {
  const auto& m = config_.model;
  const std::string& prefix = m.norm_position == "post" ? sublayers_[k].norm
                              : k + 1 < sublayers_.size() ? sublayers_[k + 1].norm
                                                          : std::string("final_norm");
  auto bias = m.norm == "layernorm" ? param(prefix + ".bias") : torch::Tensor();
  auto add_then_norm = config_.training.fused ? add_norm_fused : add_norm_reference;
  return add_then_norm(h, branch, param(prefix + ".weight"), bias, m.norm_eps);
}

torch::Tensor Model::embed(const torch::Tensor& tokens, int64_t start, bool training) const {
  auto h = torch::embedding(param("embed.weight"), tokens);
  if (config_.model.positional == "learned")
    h = h + param("pos_embed.weight").narrow(0, start, tokens.size(1)).unsqueeze(0);
  return torch::dropout(h, config_.model.dropout, training);
}

const torch::Tensor& Model::head_weight() const {
  return param(config_.model.tie_embeddings ? "embed.weight" : "lm_head.weight");
}

ModelOutput Model::forward(const torch::Tensor& tokens, bool training, uint64_t seed,
                           std::vector<torch::Tensor>* layer_outputs) {
  ModelOutput out = forward_features(tokens, training, seed, layer_outputs);
  out.logits = torch::linear(out.features, head_weight());
  return out;
}

ModelOutput Model::forward_features(const torch::Tensor& tokens, bool training, uint64_t seed,
                                    std::vector<torch::Tensor>* layer_outputs) {
  const auto& m = config_.model;
  if (tokens.size(1) > m.max_seq_len)
    throw std::invalid_argument("sequence of " + std::to_string(tokens.size(1)) + " tokens exceeds model.max_seq_len " +
                                std::to_string(m.max_seq_len));
  ModelOutput out;
  out.aux_loss = torch::zeros({}, torch::TensorOptions().device(device_));
  const bool pre = m.norm_position == "pre";
  // h: the residual stream; x: the next sublayer's input (h normed in pre-norm).
  auto h = embed(tokens, 0, training);
  auto x = pre ? norm(h, sublayers_.empty() ? "final_norm" : sublayers_.front().norm) : h;
  for (size_t k = 0; k < sublayers_.size(); ++k) {
    const auto& s = sublayers_[k];
    const std::string prefix = "layers." + std::to_string(s.layer);
    CallOptions call{training, seed * 1315423911ull + s.layer * 2 + (s.slot == "ffn")};
    auto r = s.instance->forward(x, slot_params(s.layer, s.slot), call);
    auto [sum, normed] = add_norm(h, torch::dropout(r.y, m.dropout, training), k);
    h = pre ? sum : normed;
    x = normed;
    size_t aux = 0, stat = 0;
    for (const auto& side : s.instance->sides()) {
      bool is_aux = side.kind == MIXLAB_SIDE_AUX_LOSS;
      auto value = is_aux ? r.aux_losses[aux++] : r.statistics[stat++];
      out.sides.push_back(SideOutput{prefix + "." + s.slot + "/" + side.name, value, is_aux ? side.coefficient : 0.0,
                                     is_aux, side.kind == MIXLAB_SIDE_TOKEN_STATISTIC});
      if (is_aux && side.coefficient != 0.0) out.aux_loss = out.aux_loss + side.coefficient * value;
    }
    const bool layer_done = k + 1 == sublayers_.size() || sublayers_[k + 1].layer != s.layer;
    if (layer_outputs && layer_done) layer_outputs->push_back(h);
  }
  out.features = x;
  return out;
}

bool Model::can_decode() const {
  return std::all_of(layers_.begin(), layers_.end(), [](const LayerSlots& l) { return !l.mixer || l.mixer->can_decode(); });
}

Model::DecodeSession Model::start_decode(int64_t batch) {
  if (!can_decode()) throw std::runtime_error("not every mixer of this model declares decode");
  DecodeSession s;
  s.model_ = this;
  auto dtype = params_.front().tensor.scalar_type();
  for (auto& l : layers_) s.mixer_states_.push_back(l.mixer ? l.mixer->new_state(batch, dtype, device_) : nullptr);
  return s;
}

torch::Tensor Model::DecodeSession::step(const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  Model& m = *model_;
  const bool pre = m.config_.model.norm_position == "pre";
  auto h = m.embed(tokens, position_, false);
  auto x = pre ? m.norm(h, m.sublayers_.empty() ? "final_norm" : m.sublayers_.front().norm) : h;
  for (size_t k = 0; k < m.sublayers_.size(); ++k) {
    const auto& s = m.sublayers_[k];
    torch::Tensor y;
    if (s.slot == "mixer") {
      std::vector<torch::Tensor> detached;
      for (const auto& p : m.slot_params(s.layer, "mixer")) detached.push_back(p.detach());
      y = mixer_states_[s.layer]->step(x, detached);
    } else {  // FFNs are position-wise: their forward on the new tokens is their step.
      y = s.instance->forward(x, m.slot_params(s.layer, "ffn")).y;
    }
    auto [sum, normed] = m.add_norm(h, y, k);
    h = pre ? sum : normed;
    x = normed;
  }
  position_ += tokens.size(1);
  return torch::linear(x, m.head_weight());
}

}  // namespace mixlab
