#include "interop/hf_mapping.hpp"

#include "model/readout.hpp"

#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

using json = nlohmann::json;

// Plugin defaults as the plugin READMEs state them (the host reads plugin configs, never plugin code).
double number(const json& c, const char* key, double fallback) { return c.contains(key) ? c[key].get<double>() : fallback; }
bool flag(const json& c, const char* key, bool fallback) { return c.contains(key) ? c[key].get<bool>() : fallback; }
std::string text(const json& c, const char* key, const std::string& fallback) {
  return c.contains(key) ? c[key].get<std::string>() : fallback;
}

// A plugin config without the keys that change only speed or training, not the function computed,
// and without attention's `window`, which HF configs set per layer (layer_types) and which
// Planner::layer_windows checks.
json function_keys(const PluginChoice& c) {
  json out = c.config;
  for (const char* key : {"flash_tile", "kernels", "balance_loss_coef", "z_loss_coef", "router_jitter", "dt_min", "dt_max",
                          "dt_init_floor", "window"})
    out.erase(key);
  return out;
}

struct Attention {
  int64_t heads, kv_heads, head_dim;
  bool qkv_bias, out_bias, custom_scale;
  double theta, partial;
  std::optional<double> linear_factor;
  std::optional<int64_t> window;
};

Attention read_attention(const json& c, int64_t d) {
  Attention a;
  a.heads = c.contains("n_heads") ? c["n_heads"].get<int64_t>() : std::max<int64_t>(1, d / 64);
  a.kv_heads = c.contains("n_kv_heads") ? c["n_kv_heads"].get<int64_t>() : a.heads;
  a.head_dim = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : d / a.heads;
  a.qkv_bias = flag(c, "qkv_bias", false);
  a.out_bias = flag(c, "out_bias", false);
  a.custom_scale = c.contains("softmax_scale");
  a.theta = number(c, "rope_theta", 10000.0);
  a.partial = number(c, "partial_rotary_factor", 1.0);
  if (c.contains("rope_scaling")) a.linear_factor = c["rope_scaling"].at("factor").get<double>();
  if (c.contains("window")) a.window = c["window"].get<int64_t>();
  return a;
}

struct Mamba {
  int64_t d_state, headdim, expand, ngroups, d_conv, chunk_size;
  double dt_min, dt_max, dt_floor;
};

Mamba read_mamba(const json& c) {
  return Mamba{static_cast<int64_t>(number(c, "d_state", 16)), static_cast<int64_t>(number(c, "headdim", 16)),
               static_cast<int64_t>(number(c, "expand", 2)),   static_cast<int64_t>(number(c, "ngroups", 1)),
               static_cast<int64_t>(number(c, "d_conv", 4)),   static_cast<int64_t>(number(c, "chunk_size", 64)),
               number(c, "dt_min", 0.001), number(c, "dt_max", 0.1), number(c, "dt_init_floor", 1e-4)};
}

// The shape of a parameter of a slot of layer i, from the built model.
std::vector<int64_t> shape_of(const Model& model, const std::string& name) {
  for (const auto& p : model.parameters())
    if (p.name == name) return p.tensor.sizes().vec();
  return {};
}

std::string str_of(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

class Planner {
 public:
  Planner(const ExperimentConfig& config, const Model& model) : c_(config), model_(model), layers_(config.layers()) {}

  HfPlan plan() {
    const auto& m = c_.model;
    if (m.norm != "rmsnorm") differ("model.norm = \"" + m.norm + "\": the HF classes mapped use RMSNorm");
    if (m.norm_position != "pre") differ("model.norm_position = \"" + m.norm_position + "\": the HF classes mapped are pre-norm");
    if (m.positional != "none") differ("model.positional = \"" + m.positional + "\": the HF classes mapped have no learned positions");
    if (m.residual != "sequential") differ("model.residual = \"" + m.residual + "\": the HF classes mapped are sequential");
    if (const auto why = model_.readout().non_causal(); !why.empty())
      differ(why + "; the HF classes mapped are causal language models");
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i].depth_gating)
        differ("layer " + std::to_string(i) + " has depth_gating: the HF classes mapped have no mixture-of-depths router");
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i].streams)
        differ("layer " + std::to_string(i) + " has parallel streams: the HF classes mapped have one mixer per layer");
    std::set<std::string> mixers, ffns;
    for (const auto& l : layers_)
      mixers.insert(l.streams ? "streams" : l.mixer.none ? "none" : l.mixer.plugin), ffns.insert(l.ffn.none ? "none" : l.ffn.plugin);
    auto only = [](const std::set<std::string>& s, std::set<std::string> allowed) {
      for (const auto& x : s)
        if (!allowed.count(x)) return false;
      return true;
    };
    if (only(mixers, {"attention"}) && only(ffns, {"mlp"})) transformer(false);
    else if (only(mixers, {"attention"}) && only(ffns, {"moe"})) transformer(true);
    else if (only(mixers, {"mamba"}) && only(ffns, {"none"})) mamba2();
    else if (only(mixers, {"attention", "mamba"}) && only(ffns, {"mlp"})) bamba();
    else {
      std::string kinds;
      for (size_t i = 0; i < layers_.size(); ++i)
        kinds += (i ? ", " : "") + (layers_[i].streams ? std::string("streams") : layers_[i].mixer.label()) + " + " +
                 layers_[i].ffn.label();
      differ("layers (" + kinds + "): no HF class; mapped are attention + mlp (Llama, Mistral, Qwen2), attention + moe "
             "(Mixtral), mamba + none (Mamba2), attention or mamba + mlp (Bamba)");
    }
    if (plan_.differences.empty()) map_tensors();
    return plan_;
  }

 private:
  void differ(const std::string& what) { plan_.differences.push_back(what); }

  // Every layer's `slot` (of plugin `plugin`) must have the same function-relevant config.
  const PluginChoice* uniform(const std::string& plugin, bool mixer) {
    const PluginChoice* first = nullptr;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const auto& c = mixer ? layers_[i].mixer : layers_[i].ffn;
      if (c.none || c.plugin != plugin) continue;
      if (!first) first = &c;
      else if (function_keys(c) != function_keys(*first))
        differ("layer " + std::to_string(i) + ": its " + plugin + " config differs from the first " + plugin +
               " layer's (an HF config holds one for every layer)");
    }
    return first;
  }

  void common_config(const std::string& model_type, const std::string& architecture) {
    const auto& m = c_.model;
    plan_.model_type = model_type;
    plan_.config = {{"architectures", {architecture}},
                    {"model_type", model_type},
                    {"vocab_size", model_.vocab_size()},
                    {"hidden_size", m.d_model},
                    {"num_hidden_layers", layers_.size()},
                    {"tie_word_embeddings", m.tie_embeddings},
                    {"initializer_range", m.init_std},
                    {"torch_dtype", "float32"},
                    {"bos_token_id", nullptr},
                    {"eos_token_id", nullptr},
                    {"pad_token_id", nullptr},
                    {"use_cache", true}};
  }

  void attention_config(const Attention& a) {
    plan_.config["num_attention_heads"] = a.heads;
    plan_.config["num_key_value_heads"] = a.kv_heads;
    plan_.config["head_dim"] = a.head_dim;
    plan_.config["max_position_embeddings"] = c_.model.max_seq_len;
    plan_.config["rope_theta"] = a.theta;
    plan_.config["rope_scaling"] =
        a.linear_factor ? json{{"rope_type", "linear"}, {"type", "linear"}, {"factor", *a.linear_factor}} : json(nullptr);
    plan_.config["attention_dropout"] = 0.0;
    plan_.config["rms_norm_eps"] = c_.model.norm_eps;
    if (a.custom_scale) differ("attention softmax_scale: HF uses head_dim^-0.5");
  }

  std::string gated_act(const json& ffn, const std::string& fallback) {
    std::string act = text(ffn, "activation", fallback);
    if (act == "swiglu") return "silu";
    if (act == "geglu") return "gelu";
    differ("ffn activation \"" + act + "\": the HF MLPs mapped are gated (swiglu or geglu)");
    return "silu";
  }

  // Each layer's attention window (HF: one sliding_window, and layer_types saying which layers use it).
  struct Windows {
    std::optional<int64_t> size;  // the one window size, if any layer has one
    bool mixed = false;           // some layers windowed, some global
    json layer_types = json::array();
    int64_t leading_global = 0;   // global layers before the first windowed one
    bool suffix = true;           // the windowed layers are the last ones (transformers 4's max_window_layers)
  };
  Windows layer_windows() {
    Windows w;
    bool seen_window = false;
    int64_t global = 0;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const auto& c = layers_[i].mixer.config;
      const bool windowed = c.contains("window");
      if (windowed) {
        int64_t size = c["window"].get<int64_t>();
        if (w.size && *w.size != size)
          differ("attention window " + std::to_string(size) + " in layer " + std::to_string(i) + ", " +
                 std::to_string(*w.size) + " before: an HF config holds one sliding_window");
        w.size = size;
      } else if (seen_window) {
        w.suffix = false;
      }
      if (!windowed) ++global;
      if (!windowed && !seen_window) ++w.leading_global;
      seen_window = seen_window || windowed;
      w.layer_types.push_back(windowed ? "sliding_attention" : "full_attention");
    }
    w.mixed = w.size && global > 0;
    return w;
  }

  void transformer(bool moe) {
    const auto* attn = uniform("attention", true);
    const auto* ffn = uniform(moe ? "moe" : "mlp", false);
    Attention a = read_attention(attn->config, c_.model.d_model);
    const Windows w = layer_windows();
    a.window = w.size;
    if (a.partial != 1.0) differ("attention partial_rotary_factor " + str_of(a.partial) + ": Llama, Mistral, Qwen2 and Mixtral rotate whole heads");
    if (moe) {
      common_config("mixtral", "MixtralForCausalLM");
      const auto& f = ffn->config;
      if (text(f, "router", "softmax") != "softmax") differ("moe router \"" + text(f, "router", "") + "\": Mixtral's is softmax");
      if (!flag(f, "renormalize", true)) differ("moe renormalize = false: Mixtral renormalises the top-k weights");
      if (f.contains("capacity_factor")) differ("moe capacity_factor: Mixtral drops no tokens");
      if (number(f, "shared_experts", 0) != 0) differ("moe shared_experts: Mixtral has none");
      if (a.qkv_bias || a.out_bias) differ("attention biases: Mixtral's attention has none");
      if (w.mixed) differ("attention window in some layers only: Mixtral windows every layer or none");
      auto w_in = shape_of(model_, first_param("ffn", "w_in"));
      plan_.config["hidden_act"] = gated_act(f, "swiglu");
      plan_.config["num_local_experts"] = w_in.at(0);
      plan_.config["intermediate_size"] = w_in.at(1);
      plan_.config["num_experts_per_tok"] = static_cast<int64_t>(number(f, "top_k", 2));
      plan_.config["sliding_window"] = a.window ? json(*a.window) : json(nullptr);
      plan_.config["router_jitter_noise"] = 0.0;
      plan_.config["output_router_logits"] = false;
      attention_config(a);
      return;
    }
    const auto& f = ffn->config;
    bool mlp_bias = flag(f, "bias", false);
    std::string act = text(f, "activation", "gelu");
    if (a.qkv_bias && !a.out_bias) {  // Qwen2's attention: q, k, v biased, o not
      common_config("qwen2", "Qwen2ForCausalLM");
      if (mlp_bias) differ("mlp bias: Qwen2's MLP has none");
      plan_.config["use_sliding_window"] = w.size.has_value();
      plan_.config["sliding_window"] = w.size ? json(*w.size) : json(nullptr);
      // transformers 5 reads layer_types; 4 derived the windowed layers (the last ones) from max_window_layers.
      plan_.config["max_window_layers"] = w.size && w.suffix ? w.leading_global : static_cast<int64_t>(layers_.size());
      plan_.config["layer_types"] = w.layer_types;
    } else if (a.window) {  // Mistral windows every layer; Ministral (Mistral with layer_types) some
      const bool ministral = w.mixed;
      common_config(ministral ? "ministral" : "mistral", ministral ? "MinistralForCausalLM" : "MistralForCausalLM");
      const std::string name = ministral ? "Ministral" : "Mistral";
      if (a.qkv_bias || a.out_bias) differ("attention biases: " + name + "'s attention has none");
      if (mlp_bias) differ("mlp bias: " + name + "'s MLP has none");
      plan_.config["sliding_window"] = *a.window;
      if (ministral) plan_.config["layer_types"] = w.layer_types;
    } else {
      common_config("llama", "LlamaForCausalLM");
      if (a.out_bias != a.qkv_bias) differ("attention out_bias without qkv_bias: Llama biases all four projections or none");
      plan_.config["attention_bias"] = a.qkv_bias;
      plan_.config["mlp_bias"] = mlp_bias;
    }
    plan_.config["hidden_act"] = gated_act(f, "gelu");
    plan_.config["intermediate_size"] = shape_of(model_, first_param("ffn", "w_in")).at(0);
    attention_config(a);
  }

  void mamba_checks(const Mamba& mb) {
    // mamba's gated RMSNorm uses 1e-5; HF has one eps for it and the block norms.
    if (c_.model.norm_eps != 1e-5)
      differ("model.norm_eps " + str_of(c_.model.norm_eps) + ": the mamba plugin's gated RMSNorm uses 1e-5, and HF uses one "
             "eps for it and the layer norms");
    if ((mb.expand * c_.model.d_model) % mb.headdim != 0) differ("mamba headdim does not divide expand * d_model");
  }

  void mamba2() {
    Mamba mb = read_mamba(uniform("mamba", true)->config);
    mamba_checks(mb);
    common_config("mamba2", "Mamba2ForCausalLM");
    plan_.config.update({{"num_heads", mb.expand * c_.model.d_model / mb.headdim},
                         {"head_dim", mb.headdim},
                         {"state_size", mb.d_state},
                         {"expand", mb.expand},
                         {"n_groups", mb.ngroups},
                         {"conv_kernel", mb.d_conv},
                         {"chunk_size", mb.chunk_size},
                         {"layer_norm_epsilon", c_.model.norm_eps},
                         {"use_bias", false},
                         {"use_conv_bias", true},
                         {"hidden_act", "silu"},
                         {"rms_norm", true},
                         {"residual_in_fp32", true},
                         {"time_step_min", mb.dt_min},
                         {"time_step_max", mb.dt_max},
                         {"time_step_floor", mb.dt_floor}});
  }

  void bamba() {
    const auto* attn = uniform("attention", true);
    // Bamba computes a stack of mamba + mlp alone, but transformers 5.24's BambaModel then fails in
    // its forward (its default cache asks an attention layer for the sequence length).
    if (!attn) differ("no attention layer: transformers' Bamba needs one (its cache fails without); Mamba2 has no MLP");
    Attention a = read_attention(attn ? attn->config : json{{"partial_rotary_factor", 0.5}}, c_.model.d_model);
    Mamba mb = read_mamba(uniform("mamba", true)->config);
    const auto& f = uniform("mlp", false)->config;
    mamba_checks(mb);
    common_config("bamba", "BambaForCausalLM");
    if (a.partial != 0.5) differ("attention partial_rotary_factor " + str_of(a.partial) + ": Bamba rotates half of each head (0.5)");
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i].mixer.plugin == "attention" && layers_[i].mixer.config.contains("window"))
        differ("attention window in layer " + std::to_string(i) + ": Bamba's attention is global");
    if (a.linear_factor) differ("attention rope_scaling: not mapped for Bamba");
    if (a.head_dim * a.heads != c_.model.d_model) differ("attention head_dim: Bamba's is d_model / n_heads");
    if (a.out_bias != a.qkv_bias) differ("attention out_bias without qkv_bias: Bamba biases all four projections or none");
    if (text(f, "activation", "gelu") != "swiglu") differ("mlp activation \"" + text(f, "activation", "gelu") +
                                                          "\": Bamba's hidden_act (silu) serves its MLP and its Mamba block");
    json attn_layers = json::array();
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i].mixer.plugin == "attention") attn_layers.push_back(i);
    attention_config(a);
    plan_.config.erase("head_dim");
    plan_.config.erase("rope_scaling");
    plan_.config.update({{"intermediate_size", shape_of(model_, first_param("ffn", "w_in")).at(0)},
                         {"hidden_act", "silu"},
                         {"attention_bias", a.qkv_bias},
                         {"mlp_bias", flag(f, "bias", false)},
                         {"attn_layer_indices", attn_layers},
                         {"mamba_n_heads", mb.expand * c_.model.d_model / mb.headdim},
                         {"mamba_d_head", mb.headdim},
                         {"mamba_n_groups", mb.ngroups},
                         {"mamba_d_state", mb.d_state},
                         {"mamba_d_conv", mb.d_conv},
                         {"mamba_expand", mb.expand},
                         {"mamba_chunk_size", mb.chunk_size},
                         {"mamba_conv_bias", true},
                         {"mamba_proj_bias", false},
                         {"z_loss_coefficient", 0.0}});
  }

  // The name of the first layer's parameter `name` in `slot` (for shapes).
  std::string first_param(const std::string& slot, const std::string& name) {
    for (const auto& p : model_.parameters())
      if (p.name.find("." + slot + "." + name) != std::string::npos && p.name.rfind("layers.", 0) == 0) return p.name;
    return "";
  }

  void map_tensors() {
    const std::string& t = plan_.model_type;
    const bool m2 = t == "mamba2", ba = t == "bamba";
    const std::string root = m2 ? "backbone." : "model.";
    static const std::map<std::string, std::string> attention{
        {"wq", "q_proj.weight"}, {"wk", "k_proj.weight"}, {"wv", "v_proj.weight"}, {"wo", "o_proj.weight"},
        {"bq", "q_proj.bias"},   {"bk", "k_proj.bias"},   {"bv", "v_proj.bias"},   {"bo", "o_proj.bias"}};
    static const std::map<std::string, std::string> mlp{
        {"w_in", "gate_proj.weight"}, {"w_gate", "up_proj.weight"}, {"w_out", "down_proj.weight"},
        {"b_in", "gate_proj.bias"},   {"b_gate", "up_proj.bias"},   {"b_out", "down_proj.bias"}};
    static const std::map<std::string, std::string> experts{{"w_in", "w1"}, {"w_gate", "w3"}, {"w_out", "w2"}};
    int64_t mtp_params = 0;
    for (const auto& p : model_.parameters()) {
      const std::string& n = p.name;
      // The multi-token prediction modules are a training objective: the logits never use
      // them, and no HF class has a place for them (DeepSeek-V3's own HF model skips them too).
      if (n.rfind("mtp.", 0) == 0) {
        mtp_params += p.tensor.numel();
        continue;
      }
      auto add = [&](const std::string& hf, int64_t expert = -1) { plan_.tensors.push_back({hf, n, expert}); };
      if (n == "embed.weight") add(root + (m2 ? "embeddings.weight" : "embed_tokens.weight"));
      else if (n == "final_norm.weight") add(root + (m2 ? "norm_f.weight" : ba ? "final_layernorm.weight" : "norm.weight"));
      else if (n == "lm_head.weight") add("lm_head.weight");
      else if (n.rfind("layers.", 0) == 0) {
        auto dot = n.find('.', 7);
        size_t i = std::stoul(n.substr(7, dot - 7));
        std::string rest = n.substr(dot + 1), layer = root + "layers." + std::to_string(i) + ".";
        auto slot_end = rest.find('.');
        std::string slot = rest.substr(0, slot_end), pname = rest.substr(slot_end + 1);
        if (rest == "norm1.weight") add(layer + (m2 ? "norm.weight" : "input_layernorm.weight"));
        else if (rest == "norm2.weight") add(layer + (ba ? "pre_ff_layernorm.weight" : "post_attention_layernorm.weight"));
        else if (slot == "mixer" && layers_[i].mixer.plugin == "attention" && attention.count(pname))
          add(layer + "self_attn." + attention.at(pname));
        else if (slot == "mixer" && layers_[i].mixer.plugin == "mamba") add(layer + (m2 ? "mixer." : "mamba.") + pname);
        else if (slot == "ffn" && t == "mixtral" && pname == "router") add(layer + "block_sparse_moe.gate.weight");
        else if (slot == "ffn" && t == "mixtral" && experts.count(pname)) {
          for (int64_t e = 0; e < p.tensor.size(0); ++e)
            add(layer + "block_sparse_moe.experts." + std::to_string(e) + "." + experts.at(pname) + ".weight", e);
        } else if (slot == "ffn" && mlp.count(pname)) add(layer + (ba ? "feed_forward." : "mlp.") + mlp.at(pname));
        else differ("parameter " + n + " has no " + t + " counterpart");
      } else differ("parameter " + n + " has no " + t + " counterpart");
    }
    if (mtp_params > 0)
      plan_.left_out = "left out: the " + std::to_string(c_.model.mtp.depth) + " multi-token prediction module(s) (" +
                       std::to_string(mtp_params) + " parameters, mtp.*), a training objective the logits do not use";
  }

  const ExperimentConfig& c_;
  const Model& model_;
  std::vector<LayerTemplate> layers_;
  HfPlan plan_;
};

}  // namespace

HfPlan plan_hf(const ExperimentConfig& config, const Model& model) { return Planner(config, model).plan(); }

const std::vector<std::string>& hf_model_types() {
  static const std::vector<std::string> types{"llama", "mistral", "ministral", "qwen2", "mixtral", "mamba2", "bamba"};
  return types;
}

}  // namespace mixlab
