#include "interop/hf_import.hpp"

#include "experiment/loader.hpp"
#include "data/error.hpp"
#include "data/sentencepiece_tokenizer.hpp"
#include "interop/hf_mapping.hpp"
#include "interop/hf_tokenizer.hpp"
#include "model/safetensors.hpp"
#include "runtime/registry.hpp"
#include "train/checkpoint.hpp"
#include "util/atomic_file.hpp"
#include "util/log.hpp"
#include "util/staged_dir.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

using json = nlohmann::json;

// Reads config.json. Python's json module writes a bare Infinity (transformers 4, Mamba2's
// time_step_limit), which JSON lacks; it becomes the string "Infinity" (transformers 5 writes
// {"__float__": "Infinity"}).
json read_config(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot read (a Hugging Face folder has config.json)");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (size_t at = text.find("Infinity"); at != std::string::npos; at = text.find("Infinity", at + 10))
    if (at == 0 || text[at - 1] != '"') text.replace(at, 8, "\"Infinity\"");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(file.string() + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

// Reading HF config keys, every problem naming config.json and the key.
class HfConfig {
 public:
  HfConfig(json j, std::filesystem::path file) : j_(std::move(j)), file_(std::move(file)) {}
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  template <class T>
  T get(const std::string& key) const {
    if (!has(key)) fail(key, "is required");
    try {
      return j_[key].get<T>();
    } catch (const json::exception&) {
      fail(key, "has the wrong type (" + j_[key].dump() + ")");
    }
  }
  template <class T>
  T get(const std::string& key, T fallback) const { return has(key) ? get<T>(key) : fallback; }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(file_.string() + ": " + key + " " + what);
  }
  const json& raw() const { return j_; }

 private:
  json j_;
  std::filesystem::path file_;
};

double rope_theta(const HfConfig& c) {
  if (c.has("rope_theta")) return c.get<double>("rope_theta");
  if (c.has("rope_parameters") && c.raw()["rope_parameters"].contains("rope_theta"))
    return c.raw()["rope_parameters"]["rope_theta"].get<double>();
  return 10000.0;
}

// The linear RoPE factor, if any; any other scaling type is not mapped.
std::optional<double> rope_linear(const HfConfig& c) {
  json s = c.has("rope_scaling") ? c.raw()["rope_scaling"] : c.has("rope_parameters") ? c.raw()["rope_parameters"] : json();
  if (!s.is_object()) return std::nullopt;
  std::string type = s.value("rope_type", s.value("type", std::string("default")));
  if (type == "default") return std::nullopt;
  if (type != "linear") c.fail("rope_scaling", "type \"" + type + "\" is not mapped (only linear)");
  return s.at("factor").get<double>();
}

toml::table attention_table(const HfConfig& c, bool qkv_bias, bool out_bias, double partial) {
  const int64_t d = c.get<int64_t>("hidden_size"), heads = c.get<int64_t>("num_attention_heads");
  toml::table t{{"plugin", "attention"},
                {"n_heads", heads},
                {"n_kv_heads", c.get<int64_t>("num_key_value_heads", heads)},
                {"head_dim", c.get<int64_t>("head_dim", d / heads)},
                {"qkv_bias", qkv_bias},
                {"out_bias", out_bias},
                {"rope_theta", rope_theta(c)}};
  if (partial != 1.0) t.insert("partial_rotary_factor", partial);
  double given = c.has("partial_rotary_factor") ? c.get<double>("partial_rotary_factor") : partial;
  if (given != partial) c.fail("partial_rotary_factor", "is " + std::to_string(given) + "; this architecture needs " + std::to_string(partial));
  if (auto f = rope_linear(c)) t.insert("rope_scaling", toml::table{{"type", "linear"}, {"factor", *f}});
  return t;
}

// Which layers attend within sliding_window (HF: Mistral and Mixtral all of them; Qwen2 and
// Ministral those layer_types names, Qwen2 only with use_sliding_window).
std::vector<bool> windowed_layers(const HfConfig& c, const std::string& type, int64_t layers) {
  std::vector<bool> out(layers, false);
  if (type == "llama" || !c.has("sliding_window") || (type == "qwen2" && !c.get<bool>("use_sliding_window", false)))
    return out;
  const bool per_layer = type == "qwen2" || type == "ministral";
  if (per_layer && c.has("layer_types")) {
    const json& types = c.raw()["layer_types"];
    if (!types.is_array() || static_cast<int64_t>(types.size()) != layers)
      c.fail("layer_types", "must list num_hidden_layers entries");
    for (int64_t i = 0; i < layers; ++i) {
      if (types[i] != "sliding_attention" && types[i] != "full_attention")
        c.fail("layer_types", "entry " + std::to_string(i) + " is " + types[i].dump() +
                                  " (sliding_attention or full_attention)");
      out[i] = types[i] == "sliding_attention";
    }
    return out;
  }
  const int64_t first = type == "qwen2" ? c.get<int64_t>("max_window_layers", 28) : 0;
  for (int64_t i = std::max<int64_t>(first, 0); i < layers; ++i) out[i] = true;
  return out;
}

// The schedule of runs of equal layers, naming each run's template.
toml::array runs_schedule(const std::vector<std::string>& layer_templates) {
  toml::array schedule;
  for (size_t i = 0; i < layer_templates.size();) {
    int64_t n = 0;
    const std::string& name = layer_templates[i];
    while (i < layer_templates.size() && layer_templates[i] == name) ++i, ++n;
    schedule.push_back(toml::table{{"template", name}, {"repeat", n}});
  }
  return schedule;
}

std::string activation(const HfConfig& c) {
  auto act = c.get<std::string>("hidden_act", "silu");
  if (act == "silu") return "swiglu";
  if (act == "gelu") return "geglu";
  c.fail("hidden_act", "\"" + act + "\" is not mapped (silu or gelu)");
}

toml::table mamba_table(const HfConfig& c, const std::string& p) {
  const int64_t d = c.get<int64_t>("hidden_size"), expand = c.get<int64_t>(p + "expand", 2);
  auto heads = c.get<int64_t>(p + (p.empty() ? "num_heads" : "n_heads"));
  int64_t headdim = (c.raw().value(p + (p.empty() ? "head_dim" : "d_head"), json()).is_number())
                        ? c.get<int64_t>(p + (p.empty() ? "head_dim" : "d_head"))
                        : expand * d / heads;
  if (heads * headdim != expand * d) c.fail(p + "n_heads", "times the head size is not expand * hidden_size");
  auto limit = c.raw().value("time_step_limit", json::array({0.0, "Infinity"}));
  auto infinite = [](const json& v) { return v == "Infinity" || (v.is_object() && v.value("__float__", "") == "Infinity"); };
  if (!limit.is_array() || limit.size() != 2 || limit[0] != 0.0 || !infinite(limit[1]))
    c.fail("time_step_limit", "is " + limit.dump() + "; the mamba plugin does not clamp dt (only (0, inf) is mapped)");
  if (c.get<bool>(p.empty() ? "use_bias" : "mamba_proj_bias", false)) c.fail(p.empty() ? "use_bias" : "mamba_proj_bias", "projection biases are not mapped");
  if (!c.get<bool>(p.empty() ? "use_conv_bias" : "mamba_conv_bias", true)) c.fail(p.empty() ? "use_conv_bias" : "mamba_conv_bias", "the mamba plugin always has a conv bias");
  toml::table t{{"plugin", "mamba"},
                {"d_state", c.get<int64_t>(p + (p.empty() ? "state_size" : "d_state"))},
                {"headdim", headdim},
                {"expand", expand},
                {"ngroups", c.get<int64_t>(p + "n_groups", 1)},
                {"d_conv", c.get<int64_t>(p + (p.empty() ? "conv_kernel" : "d_conv"), 4)},
                {"chunk_size", c.get<int64_t>(p + "chunk_size", 256)}};
  if (p.empty())
    for (auto [hf, ours] : {std::pair{"time_step_min", "dt_min"}, std::pair{"time_step_max", "dt_max"},
                            std::pair{"time_step_floor", "dt_init_floor"}})
      if (c.has(hf)) t.insert(ours, c.get<double>(hf));
  return t;
}

// The experiment TOML an HF config describes.
std::string experiment_toml(const HfConfig& c, const std::string& type, const std::filesystem::path& source,
                            const toml::table& tokenizer) {
  const int64_t layers = c.get<int64_t>("num_hidden_layers");
  const bool mamba2 = type == "mamba2";
  // Mamba-2 has no position limit; 4096 bounds the sequences host forward accepts.
  const int64_t max_len = mamba2 ? 4096 : c.get<int64_t>("max_position_embeddings");
  toml::table model{{"d_model", c.get<int64_t>("hidden_size")},
                    {"max_seq_len", max_len},
                    {"norm", "rmsnorm"},
                    {"norm_position", "pre"},
                    {"norm_eps", mamba2 ? c.get<double>("layer_norm_epsilon", 1e-5)
                                        : c.get<double>("rms_norm_eps", type == "mixtral" || type == "bamba" ? 1e-5 : 1e-6)},
                    {"tie_embeddings", c.get<bool>("tie_word_embeddings", false)},
                    {"init_std", c.get<double>("initializer_range", 0.02)}};
  toml::table templates;
  toml::array schedule;
  auto mlp = [&](bool bias) {
    toml::table t{{"plugin", "mlp"}, {"activation", activation(c)}, {"hidden", c.get<int64_t>("intermediate_size")}};
    if (bias) t.insert("bias", true);
    return t;
  };
  if (type == "llama" || type == "mistral" || type == "ministral" || type == "qwen2" || type == "mixtral") {
    bool bias = type == "llama" && c.get<bool>("attention_bias", false);
    auto attn = attention_table(c, bias || type == "qwen2", bias, 1.0);
    toml::table ffn = type == "mixtral"
                          ? toml::table{{"plugin", "moe"},
                                        {"experts", c.get<int64_t>("num_local_experts")},
                                        {"top_k", c.get<int64_t>("num_experts_per_tok")},
                                        {"expert_hidden", c.get<int64_t>("intermediate_size")},
                                        {"activation", activation(c)}}
                          : mlp(type == "llama" && c.get<bool>("mlp_bias", false));
    const auto windowed = windowed_layers(c, type, layers);
    std::vector<std::string> names;
    for (bool w : windowed) names.push_back(w ? "window" : "block");
    if (std::count(windowed.begin(), windowed.end(), false) > 0)
      templates.insert("block", toml::table{{"mixer", attn}, {"ffn", ffn}});
    if (std::count(windowed.begin(), windowed.end(), true) > 0) {
      attn.insert("window", c.get<int64_t>("sliding_window"));
      templates.insert("window", toml::table{{"mixer", attn}, {"ffn", ffn}});
    }
    schedule = runs_schedule(names);
  } else if (mamba2) {
    if (!c.get<bool>("rms_norm", true)) c.fail("rms_norm", "false is not mapped");
    if (c.get<std::string>("hidden_act", "silu") != "silu") c.fail("hidden_act", "must be silu for the mamba plugin");
    templates.insert("mamba", toml::table{{"mixer", mamba_table(c, "")}, {"ffn", "none"}});
    schedule.push_back(toml::table{{"template", "mamba"}, {"repeat", layers}});
  } else {  // bamba
    if (c.get<std::string>("hidden_act", "silu") != "silu") c.fail("hidden_act", "must be silu (Bamba's MLP and Mamba block)");
    bool bias = c.get<bool>("attention_bias", false);
    std::set<int64_t> attn;
    for (const auto& i : c.raw().value("attn_layer_indices", json::array())) attn.insert(i.get<int64_t>());
    if (!attn.empty())
      templates.insert("attn", toml::table{{"mixer", attention_table(c, bias, bias, 0.5)}, {"ffn", mlp(c.get<bool>("mlp_bias", false))}});
    if (static_cast<int64_t>(attn.size()) < layers)
      templates.insert("mamba", toml::table{{"mixer", mamba_table(c, "mamba_")}, {"ffn", mlp(c.get<bool>("mlp_bias", false))}});
    std::vector<std::string> names;
    for (int64_t i = 0; i < layers; ++i) names.push_back(attn.count(i) ? "attn" : "mamba");
    schedule = runs_schedule(names);
  }
  model.insert("templates", templates);
  model.insert("schedule", schedule);
  toml::table root{
      {"job", toml::table{{"name", "imported-" + type}, {"description", "imported from " + source.string() + " (" + type + ")"}}},
      {"model", model},
      {"tokenizer", tokenizer},
      {"data", toml::table{{"source", "builtin:grammar"}, {"seq_len", std::min<int64_t>(max_len, 128)}}},
      {"training", toml::table{{"steps", 100}}}};
  std::ostringstream out;
  out << "# Imported by `host import` from " << source.string() << " (" << type << ").\n"
      << "# The model section is the checkpoint's; [tokenizer] is the folder's SentencePiece tokenizer.model\n"
      << "# when mixlab reads it (else the import is ids-only: see import.json); [data] and [training] are a\n"
      << "# starting point for `host run --init-from`.\n"
      << root << "\n";
  return out.str();
}

// Every tensor of the folder: model.safetensors, or the shards model.safetensors.index.json lists.
std::map<std::string, std::pair<torch::Tensor, std::filesystem::path>> read_hf_tensors(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::exists(dir / "model.safetensors")) files.push_back(dir / "model.safetensors");
  else if (std::filesystem::exists(dir / "model.safetensors.index.json")) {
    std::set<std::string> shards;
    const json index = read_config(dir / "model.safetensors.index.json");
    for (const auto& [name, file] : index.at("weight_map").items()) shards.insert(file.get<std::string>());
    for (const auto& s : shards) files.push_back(dir / s);
  } else {
    throw std::runtime_error((dir / "model.safetensors").string() + ": missing (nor model.safetensors.index.json)");
  }
  std::map<std::string, std::pair<torch::Tensor, std::filesystem::path>> out;
  for (const auto& f : files)
    for (auto& [name, t] : load_safetensors(f).tensors) out[name] = {t, f};
  // transformers 5 keeps Mixtral experts fused: gate_up_proj (E, 2I, H) and down_proj (E, H, I).
  std::vector<std::string> fused;
  for (const auto& [name, t] : out)
    if (name.size() > 25 && name.substr(name.size() - 25) == ".mlp.experts.gate_up_proj") fused.push_back(name);
  for (const auto& name : fused) {
    std::string layer = name.substr(0, name.size() - 25), moe = layer + ".block_sparse_moe.";
    auto [gate_up, file] = out.at(name);
    auto down = out.at(layer + ".mlp.experts.down_proj").first;
    int64_t inter = gate_up.size(1) / 2;
    for (int64_t e = 0; e < gate_up.size(0); ++e) {
      std::string ex = moe + "experts." + std::to_string(e) + ".";
      out[ex + "w1.weight"] = {gate_up[e].narrow(0, 0, inter), file};
      out[ex + "w3.weight"] = {gate_up[e].narrow(0, inter, inter), file};
      out[ex + "w2.weight"] = {down[e], file};
    }
    out[moe + "gate.weight"] = out.at(layer + ".mlp.gate.weight");
    out.erase(name), out.erase(layer + ".mlp.experts.down_proj"), out.erase(layer + ".mlp.gate.weight");
  }
  return out;
}

// What the imported experiment's [tokenizer] says, and the model file to copy beside it.
struct ImportTokenizer {
  toml::table section;
  std::filesystem::path model_file;  // a SentencePiece tokenizer.model to copy, or empty
  std::string note;                  // "ids-only ..." when the folder's tokenizer is not carried
};

// The rule (docs/interop.md): a SentencePiece tokenizer.model with byte pieces is carried (its piece
// count must be config.json's vocab_size); mixlab's own byte tokenizer.json is recognised; any other
// tokenizer leaves the import ids-only, with a warning.
ImportTokenizer import_tokenizer(const std::filesystem::path& hf_dir, int64_t vocab) {
  namespace fs = std::filesystem;
  const fs::path sp_file = hf_dir / "tokenizer.model", json_file = hf_dir / "tokenizer.json";
  const toml::table ids_only_section{{"kind", "byte"}};
  std::string unreadable;
  if (fs::is_regular_file(sp_file)) {
    try {
      auto tok = data::SentencePieceTokenizer::load(sp_file);
      if (tok->vocab_size() != vocab)
        throw std::runtime_error(sp_file.string() + ": " + std::to_string(tok->vocab_size()) + " pieces, but " +
                                 (hf_dir / "config.json").string() + " has vocab_size " + std::to_string(vocab) +
                                 "; the tokenizer does not fit the model (--ids-only imports the weights without it)");
      toml::table section{{"kind", "sentencepiece"}, {"vocab_size", vocab}, {"model_file", "tokenizer.model"}};
      const auto& type = tok->model().model_type;
      if (type == "bpe" || type == "unigram") section.insert("model_type", type);
      return {section, sp_file, "SentencePiece " + type + " tokenizer.model (" + std::to_string(vocab) + " pieces)"};
    } catch (const data::DataError& e) {
      unreadable = std::string(e.what());
    }
  } else if (fs::is_regular_file(json_file)) {
    std::ifstream in(json_file);
    auto j = json::parse(in, nullptr, false);
    if (vocab == 256 && !j.is_discarded() && j == byte_tokenizer_json())
      return {toml::table{{"kind", "byte"}}, {}, "mixlab byte tokenizer (tokenizer.json)"};
    unreadable = json_file.string() + ": mixlab reads a SentencePiece tokenizer.model or its own byte tokenizer.json";
  } else {
    for (const char* other : {"vocab.json", "merges.txt", "tokenizer_config.json", "vocab.txt"})
      if (fs::exists(hf_dir / other)) unreadable = (hf_dir / other).string() + ": no tokenizer.model or tokenizer.json";
  }
  if (unreadable.empty()) return {ids_only_section, {}, "ids-only: " + hf_dir.string() + " has no tokenizer"};
  return {ids_only_section, {},
          "ids-only: the tokenizer is not imported (" + unreadable +
              "); host forward takes token ids, text commands need a tokenizer with the model's vocabulary"};
}

}  // namespace

ImportResult import_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& output_dir, bool ids_only) {
  HfConfig hf(read_config(hf_dir / "config.json"), hf_dir / "config.json");
  auto type = hf.get<std::string>("model_type");
  const auto& types = hf_model_types();
  if (std::find(types.begin(), types.end(), type) == types.end()) {
    std::string list;
    for (const auto& t : types) list += (list.empty() ? "" : ", ") + t;
    hf.fail("model_type", "\"" + type + "\" is not supported (supported: " + list + ")");
  }
  auto hf_tensors = read_hf_tensors(hf_dir);
  const int64_t vocab = hf.get<int64_t>("vocab_size");
  const ImportTokenizer tokenizer = ids_only ? ImportTokenizer{toml::table{{"kind", "byte"}}, {}, "ids-only (--ids-only)"}
                                             : import_tokenizer(hf_dir, vocab);
  if (tokenizer.note.rfind("ids-only", 0) == 0 && !ids_only) log::warn(tokenizer.note);

  StagedDir out(output_dir, "import");
  const auto& dir = out.path();
  if (!tokenizer.model_file.empty()) std::filesystem::copy_file(tokenizer.model_file, dir / "tokenizer.model");
  write_file_atomic(dir / "experiment.toml", experiment_toml(hf, type, hf_dir, tokenizer.section));
  write_file_atomic(dir / "overrides.json", "[]\n");
  ExperimentConfig config = load_experiment(dir / "experiment.toml", {});
  Registry registry = experiment_registry(config);
  auto problems = check_plugins(config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  Model model(config, registry, vocab, torch::kCPU);
  HfPlan plan = plan_hf(config, model);
  // Another class may express the same model (Mistral without a window is Llama, Ministral with
  // every layer windowed is Mistral): export then writes that one.
  if (!plan.differences.empty())
    throw std::runtime_error((hf_dir / "config.json").string() + ": maps to " + plan.model_type +
                             " with differences: " + plan.differences.front() + "; not imported");

  // Gather each mixlab parameter from its HF tensor(s), stacking experts.
  std::map<std::string, std::vector<torch::Tensor>> parts;
  std::set<std::string> used;
  std::vector<std::string> missing;
  for (const auto& t : plan.tensors) {
    auto it = hf_tensors.find(t.hf);
    if (it == hf_tensors.end()) {
      missing.push_back(t.hf);
      continue;
    }
    used.insert(t.hf);
    parts[t.mixlab].push_back(it->second.first);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, value] : hf_tensors)
    if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos &&
        !(name == "lm_head.weight" && config.model.tie_embeddings))
      unexpected.push_back(name + " (" + value.second.filename().string() + ")");
  if (!missing.empty() || !unexpected.empty()) {
    std::string msg = hf_dir.string() + ": the tensors do not match config.json's " + type + ":";
    for (const auto& m : missing) msg += "\n  missing    " + m;
    for (const auto& u : unexpected) msg += "\n  unexpected " + u;
    throw std::runtime_error(msg);
  }
  SafetensorsFile weights;
  for (const auto& p : model.parameters()) {
    const auto& v = parts.at(p.name);
    bool stacked = std::any_of(plan.tensors.begin(), plan.tensors.end(),
                               [&](const HfTensor& t) { return t.mixlab == p.name && t.expert >= 0; });
    weights.tensors.emplace_back(p.name, stacked ? torch::stack(v) : v.front());
  }
  assign_weights(weights, hf_dir, model);  // checks every shape
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : model.parameters()) named.emplace_back(p.name, p.tensor.detach());
  save_safetensors(dir / "model.safetensors", named, {{"format", "pt"}, {"source", hf_dir.string()}});
  json resolved = config.to_json();
  if (!tokenizer.model_file.empty()) resolved["tokenizer"]["model_file"] = "tokenizer.model";  // not D.tmp's path
  write_file_atomic(dir / "config.json", resolved.dump(2) + "\n");
  write_file_atomic(dir / "import.json", json{{"source", hf_dir.string()},
                                              {"model_type", type},
                                              {"exports_as", plan.model_type},
                                              {"tokenizer", tokenizer.note}}
                                                 .dump(2) + "\n");
  out.commit();
  return {type, tokenizer.note};
}

}  // namespace mixlab
