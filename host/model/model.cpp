#include "model/model.hpp"

#include "model/mtp_head.hpp"
#include "model/readout.hpp"
#include "runtime/host_api.hpp"

namespace mixlab {

std::vector<LayerSlots> create_layers(const ExperimentConfig& config, const Registry& registry) {
  std::vector<LayerSlots> layers;
  for (const auto& layer : config.layers()) {
    auto make = [&](const PluginChoice& c, int64_t width) -> std::shared_ptr<PluginInstance> {
      if (c.none) return nullptr;
      return PluginInstance::create(registry.select({c.plugin, c.impl, c.version}), width, config.model.max_seq_len,
                                    c.config.dump());
    };
    const int64_t d = config.model.d_model;
    LayerSlots slots{make(layer.mixer, d), make(layer.ffn, d), {}};
    if (layer.streams)
      for (const auto& s : layer.streams->streams) slots.streams.push_back(make(s.mixer, s.width_or(d)));
    layers.push_back(std::move(slots));
  }
  return layers;
}

Model::Model(const ExperimentConfig& config, const Registry& registry, int64_t vocab_size, torch::Device device)
    : config_(config),
      vocab_(vocab_size),
      device_(device),
      layers_(create_layers(config, registry)),
      context_(config.model, config.training.fused, [this](const std::string& name) -> const torch::Tensor& {
        return param(name);
      }) {
  const auto& m = config.model;
  const int64_t d = m.d_model;
  torch::NoGradGuard no_grad;
  // One generator for the host's own parameters; plugins' parameters (and routers) are seeded per layer.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(config.job.seed * 7919ull + 17);
  auto add = [&](const std::string& name, torch::Tensor t, bool decay) {
    index_[name] = params_.size();
    params_.push_back(NamedParam{name, t.to(device_).requires_grad_(true), decay});
  };
  auto normal = [&](std::vector<int64_t> shape) {
    return torch::empty(shape, torch::kFloat32).normal_(0.0, m.init_std, gen);
  };
  auto add_all = [&](const std::vector<BlockParam>& ps) {
    for (const auto& p : ps) add(p.name, p.value, p.weight_decay);
  };
  add("embed.weight", normal({vocab_, d}), false);
  if (m.positional == "learned") add("pos_embed.weight", normal({m.max_seq_len, d}), false);
  const auto templates = config.layers();
  const uint64_t layer_seed = config.job.seed * 1000003ull;
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::string prefix = "layers." + std::to_string(i);
    blocks_.push_back(make_block(i, layers_[i], templates[i], context_));
    for (const auto& norm : blocks_.back()->norms()) add_all(norm_params(norm, m));
    const uint64_t n_layers = layers_.size();
    for (const auto& slot : layers_[i].plugins()) {
      // Stream 0 takes the mixer's seed; stream k >= 1 seeds past the extra parameters' (layer_seed + 2 * layers + i).
      const uint64_t stream = slot.stream.value_or(0);
      uint64_t seed = stream ? layer_seed + (2 + stream) * n_layers + i : layer_seed + i * 2 + (slot.name == "ffn");
      add_all(plugin_init_params(prefix + "." + slot.name, *slot.plugin, seed, m.init_std));
    }
    // Seeds past the plugins' (which use layer_seed + 0 .. 2 * layers - 1).
    add_all(blocks_.back()->extra_params(layer_seed + 2 * layers_.size() + i, m.init_std));
  }
  if (m.norm_position == "pre") add_all(norm_params("final_norm", m));
  if (!m.tie_embeddings) add("lm_head.weight", normal({vocab_, d}), true);
  readout_ = make_readout(context_);
  add_all(readout_->params(config.job.seed * 7919ull + 41, m.init_std));
  if (m.mtp.depth > 0) mtp_ = std::make_unique<MtpHead>(config, registry, add_all);
}

Model::~Model() = default;

int64_t Model::n_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.tensor.numel();
  return n;
}

const torch::Tensor& Model::param(const std::string& name) const { return params_.at(index_.at(name)).tensor; }

torch::Tensor Model::norm(const torch::Tensor& x, const std::string& prefix) const { return context_.norm(x, prefix); }

Stream Model::first_stream(const torch::Tensor& h) const {
  if (config_.model.norm_position != "pre") return Stream{h, h};
  return Stream{h, context_.norm(h, blocks_.empty() ? "final_norm" : blocks_.front()->input_norm())};
}

std::string Model::norm_after(size_t b) const {
  if (config_.model.norm_position != "pre") return "";  // post-norm blocks end with their own norm
  return b + 1 < blocks_.size() ? blocks_[b + 1]->input_norm() : "final_norm";
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
  const BlockCall call{training, seed, &out.sides, &out.aux_loss};
  Stream s = first_stream(embed(tokens, 0, training));
  for (size_t b = 0; b < blocks_.size(); ++b) {
    s = blocks_[b]->forward(s, norm_after(b), call);
    if (layer_outputs) layer_outputs->push_back(s.h);
  }
  out.features = readout_->forward(s.x);
  return out;
}

bool Model::can_decode(int64_t batch) const {
  return readout_->non_causal().empty() &&
         std::all_of(blocks_.begin(), blocks_.end(), [&](const auto& b) { return b->can_decode(batch); });
}

Model::DecodeSession Model::start_decode(int64_t batch) {
  if (const auto why = readout_->non_causal(); !why.empty()) throw std::runtime_error(why + ": it does not decode");
  if (!can_decode(batch))
    throw std::runtime_error(can_decode(1) ? "a model with depth gating decodes one sequence at a time"
                                           : "not every mixer of this model declares decode");
  DecodeSession s;
  s.model_ = this;
  auto dtype = params_.front().tensor.scalar_type();
  for (const auto& b : blocks_) s.states_.push_back(b->new_state(batch, dtype, device_));
  return s;
}

torch::Tensor Model::DecodeSession::step(const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  Model& m = *model_;
  Stream s = m.first_stream(m.embed(tokens, position_, false));
  for (size_t b = 0; b < m.blocks_.size(); ++b) s = m.blocks_[b]->step(s, m.norm_after(b), states_[b]);
  position_ += tokens.size(1);
  return torch::linear(m.readout_->forward(s.x), m.head_weight());
}

}  // namespace mixlab
