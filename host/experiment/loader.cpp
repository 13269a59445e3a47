#include "experiment/loader.hpp"

#include "experiment/schema.hpp"

#include <mixlab/edit_distance.hpp>  // shared with plugins' config errors
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

SourcePos pos_of(const toml::node& n, const std::string& fallback_file) {
  const auto& src = n.source();
  return SourcePos{src.path ? *src.path : fallback_file, static_cast<int64_t>(src.begin.line),
                   static_cast<int64_t>(src.begin.column)};
}

std::string did_you_mean(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = 3;
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best.empty() ? "" : " (did you mean \"" + best + "\"?)";
}

// A list index written in a --set key ("model.schedule.2.repeat"): digits only, and
// within the list; anything else (a word, a number beyond 64 bits) is not an index.
std::optional<size_t> list_index(const std::string& text, size_t list_size) {
  size_t index = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || index >= list_size) return std::nullopt;
  return index;
}

// The first NaN or infinity in a value (a number, or one inside a list or table), or null.
const toml::node* non_finite(const toml::node& n) {
  if (auto v = n.value<double>(); n.is_floating_point() && v && !std::isfinite(*v)) return &n;
  if (const auto* a = n.as_array())
    for (const auto& item : *a)
      if (const auto* bad = non_finite(item)) return bad;
  if (const auto* t = n.as_table())
    for (const auto& [k, item] : *t)
      if (const auto* bad = non_finite(item)) return bad;
  return nullptr;
}

class Loader {
 public:
  Loader(std::string file) : file_(std::move(file)) {}

  // Where `field` came from; a value set on the command line is reported as coming from there.
  SourcePos position(const toml::node* n, const std::string& field) const {
    auto o = overridden_.find(field);
    if (o != overridden_.end()) return SourcePos{"--set " + o->second, 0, 0};
    return n ? pos_of(*n, file_) : SourcePos{file_, 0, 0};
  }

  void error(const toml::node* n, const std::string& field, const std::string& message) {
    diagnostics_.push_back(Diagnostic{position(n, field), field, message});
  }

  // Inserts "a.b.c=value" into the table; the value is TOML ("3", "\"x\"", "[1, 2]") or a bare string.
  void apply_override(toml::table& root, const std::string& assignment) {
    std::string where = "--set " + assignment;
    auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
      diagnostics_.push_back(Diagnostic{SourcePos{"--set", 0, 0}, assignment, "expected key=value"});
      return;
    }
    std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
    overridden_[key] = assignment;
    toml::table parsed;
    try {
      parsed = toml::parse("value = " + text, where);
    } catch (const toml::parse_error&) {
      parsed = toml::parse("value = " + toml_quote(text), where);
    }
    std::vector<std::string> parts;
    std::stringstream ss(key);
    std::string part;
    while (std::getline(ss, part, '.')) parts.push_back(part);
    const SourcePos at{where, 0, 0};
    if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); }) || key.back() == '.') {
      diagnostics_.push_back(Diagnostic{at, key, "expected a dotted key such as training.steps"});
      return;
    }
    toml::node* cur = &root;
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      if (auto* t = cur->as_table()) {
        if (last) t->insert_or_assign(parts[i], *parsed.get("value"));
        else if (!t->contains(parts[i])) t->insert(parts[i], toml::table{});
        cur = t->get(parts[i]);
      } else if (auto* a = cur->as_array()) {
        auto index = list_index(parts[i], a->size());
        if (!index) {
          diagnostics_.push_back(Diagnostic{at, key, "no element " + parts[i] + " in this list (it has " +
                                                         std::to_string(a->size()) + ", counted from 0)"});
          return;
        }
        if (last) a->replace(a->begin() + static_cast<long>(*index), *parsed.get("value"));
        cur = a->get(*index);
      } else {
        diagnostics_.push_back(Diagnostic{at, key, parts[i - 1] + " is a value, not a table or list"});
        return;
      }
    }
  }

  static std::string number_text(double n) {
    std::ostringstream out;
    out << n;
    return out.str();
  }

  static std::string toml_quote(const std::string& s) {
    std::ostringstream out;
    out << toml::value<std::string>(s);
    return out.str();
  }

  PluginChoice read_choice(const toml::node& n, const std::string& field) {
    PluginChoice c;
    c.pos = pos_of(n, file_);
    const auto* t = n.as_table();
    if (!t) {
      error(&n, field, "expected a table { plugin = \"...\", impl = \"...\", version = \"...\", ...plugin config }");
      return c;
    }
    for (const auto& [k, v] : *t) {
      std::string key(k.str());
      if (key == "plugin" || key == "impl" || key == "version") {
        if (!v.is_string()) {
          error(&v, field + "." + key, "expected a string");
          continue;
        }
        std::string s = v.as_string()->get();
        if (key == "plugin") c.plugin = s;
        else if (key == "impl") c.impl = s;
        else c.version = s;
        c.key_pos[key] = position(&v, field + "." + key);
        continue;
      }
      if (const auto* bad = non_finite(v)) {
        error(bad, field + "." + key, "expected a finite number, got " + number_text(*bad->value<double>()));
        continue;
      }
      std::ostringstream json;
      json << toml::json_formatter{toml::table{{key, v}}};
      c.config[key] = nlohmann::json::parse(json.str())[key];
      c.key_pos[key] = position(&v, field + "." + key);
    }
    if (c.plugin.empty()) error(&n, field + ".plugin", "is required (the plugin's name, see `host plugins`)");
    return c;
  }

  // A slot is a plugin table or the string "none" (the layer has no such branch).
  PluginChoice read_slot(const toml::node& n, const std::string& field) {
    if (const auto* s = n.as_string()) {
      PluginChoice c;
      c.pos = pos_of(n, file_);
      if (s->get() == "none") c.none = true;
      else error(&n, field, "expected a plugin table or \"none\", got the string \"" + s->get() + "\"");
      return c;
    }
    return read_choice(n, field);
  }

  // `depth_gating = { capacity = 0.125, router = "linear", aux_loss = 0.1 }` (host/model/depth_gating.hpp).
  DepthGating read_depth_gating(const toml::node& n, const std::string& field, const ExperimentConfig& c) {
    DepthGating g;
    g.pos = pos_of(n, file_);
    const auto* table = n.as_table();
    if (!table) {
      error(&n, field, "expected a table { capacity = 0.125, router = \"linear\", aux_loss = 0.1 }");
      return g;
    }
    for (const auto& [k, v] : *table) {
      std::string key(k.str());
      auto number = v.value<double>();
      const bool is_number = (v.is_floating_point() || v.is_integer()) && number && std::isfinite(*number);
      if (key == "capacity") {
        if (!is_number || *number <= 0 || *number > 1)
          error(&v, field + ".capacity",
                "expected a number in (0, 1] (the share of a sequence's tokens that pass the layer), got " + describe_value(v));
        else g.capacity = *number;
      } else if (key == "aux_loss") {
        if (!is_number || *number < 0 || *number > 100)
          error(&v, field + ".aux_loss", "expected a number in [0, 100] (the router BCE loss's weight), got " + describe_value(v));
        else g.aux_loss = *number;
      } else if (key == "router") {
        if (!v.is_string() || v.as_string()->get() != "linear")
          error(&v, field + ".router", "expected \"linear\" (a d_model -> 1 projection), got " + describe_value(v));
      } else {
        error(&v, field + "." + key,
              "unknown key" + did_you_mean(key, {"capacity", "router", "aux_loss"}) + "; expected capacity, router, aux_loss");
      }
    }
    if (!table->contains("capacity")) error(&n, field + ".capacity", "is required (a number in (0, 1])");
    if (c.model.norm_position != "pre")
      error(&n, field, "needs model.norm_position = \"pre\" (a skipped token keeps its residual stream unnormed)");
    return g;
  }

  // One stream: `{ mixer = { plugin = "..." }, width = 96 }` (width optional: d_model).
  StreamSpec read_stream(const toml::node& n, const std::string& field, const ExperimentConfig& c) {
    StreamSpec s;
    s.pos = pos_of(n, file_);
    const auto* table = n.as_table();
    if (!table) {
      error(&n, field, "expected a table { mixer = { plugin = \"...\" }, width = N }, got " + describe_value(n));
      return s;
    }
    for (const auto& [k, v] : *table) {
      std::string key(k.str());
      if (key == "mixer") {
        s.mixer = read_choice(v, field + ".mixer");
      } else if (key == "width") {
        auto w = v.value<int64_t>();
        if (!v.is_integer() || !w || *w < 1 || *w > limits::kWidth)
          error(&v, field + ".width", "expected an integer in 1 .. " + std::to_string(limits::kWidth) +
                                          " (the stream's mixer width), got " + describe_value(v));
        else s.width = *w == c.model.d_model ? 0 : *w;
      } else {
        error(&v, field + "." + key, "unknown key" + did_you_mean(key, {"mixer", "width"}) + "; a stream's keys: mixer, width");
      }
    }
    if (!table->contains("mixer")) error(&n, field + ".mixer", "is required (a mixer plugin table)");
    return s;
  }

  // `streams = [{ mixer = ... }, { mixer = ..., width = 96 }]`, `merge = "..."`, `merge_heads = N`
  // (host/model/parallel_streams.hpp).
  ParallelStreams read_streams(const toml::table& t, const std::string& field, const ExperimentConfig& c) {
    ParallelStreams p;
    const auto* list = t.get("streams");
    p.pos = pos_of(*list, file_);
    const auto* array = list->as_array();
    if (!array || array->size() < 2 || array->size() > limits::kStreams) {
      error(list, field + ".streams", "expected a list of 2 .. " + std::to_string(limits::kStreams) +
                                          " streams [{ mixer = { plugin = \"...\" } }, ...], got " + describe_value(*list));
      return p;
    }
    for (size_t k = 0; k < array->size(); ++k)
      p.streams.push_back(read_stream(*array->get(k), field + ".streams." + std::to_string(k), c));
    const auto* merge = t.get("merge");
    const std::vector<std::string> merges{"concat", "add", "gated", "cross_attn"};
    if (!merge) {
      error(list, field + ".merge", "is required with streams: \"concat\", \"add\", \"gated\" or \"cross_attn\"");
      return p;
    }
    if (!merge->is_string() || std::find(merges.begin(), merges.end(), merge->as_string()->get()) == merges.end()) {
      const std::string got = merge->is_string() ? merge->as_string()->get() : "";
      error(merge, field + ".merge", "expected \"concat\", \"add\", \"gated\" or \"cross_attn\", got " +
                                         describe_value(*merge) + did_you_mean(got, merges));
      return p;
    }
    p.merge = merge->as_string()->get();
    if (const auto* heads = t.get("merge_heads")) {
      auto h = heads->value<int64_t>();
      if (p.merge != "cross_attn")
        error(heads, field + ".merge_heads", "only a cross_attn merge has heads (merge is \"" + p.merge + "\")");
      else if (!heads->is_integer() || !h || *h < 1 || c.model.d_model % *h != 0)
        error(heads, field + ".merge_heads", "expected an integer >= 1 that divides d_model " +
                                                 std::to_string(c.model.d_model) + ", got " + describe_value(*heads));
      else p.merge_heads = *h;
    }
    // Only concat projects the streams back to d_model; the other merges combine them channel by channel.
    if (p.merge != "concat")
      for (size_t k = 0; k < p.streams.size(); ++k)
        if (p.streams[k].width != 0) {
          const auto* table = array->get(k)->as_table();
          error(table && table->get("width") ? table->get("width") : array->get(k), field + ".streams." + std::to_string(k) + ".width",
                "merge = \"" + p.merge + "\" combines the streams channel by channel, so every stream needs width d_model (" +
                    std::to_string(c.model.d_model) + "), stream " + std::to_string(k) + " has " +
                    std::to_string(p.streams[k].width) + "; merge = \"concat\" projects streams of any widths to d_model");
        }
    return p;
  }

  LayerTemplate read_template(const toml::node& n, const std::string& field, const ExperimentConfig& c) {
    LayerTemplate t;
    const auto* table = n.as_table();
    if (!table) {
      error(&n, field, "expected a table with mixer (or streams) and ffn");
      return t;
    }
    const std::vector<std::string> keys{"mixer", "ffn", "depth_gating", "streams", "merge", "merge_heads"};
    for (const auto& [k, v] : *table) {
      std::string key(k.str());
      if (key == "mixer") t.mixer = read_slot(v, field + ".mixer");
      else if (key == "ffn") t.ffn = read_slot(v, field + ".ffn");
      else if (key == "depth_gating") t.depth_gating = read_depth_gating(v, field + ".depth_gating", c);
      else if (key == "merge" || key == "merge_heads") {
        if (!table->contains("streams")) error(&v, field + "." + key, "needs streams (the mixers it merges)");
      } else if (key != "layer" && key != "streams")
        error(&v, field + "." + key,
              "unknown key; expected mixer, streams, ffn or depth_gating" + did_you_mean(key, keys));
    }
    if (table->contains("streams")) {
      if (table->contains("mixer"))
        error(table->get("mixer"), field + ".mixer", "a layer has either a mixer or streams (which take its place), not both");
      t.streams = read_streams(*table, field, c);
      t.mixer.none = true;
    } else if (!table->contains("mixer")) {
      error(&n, field + ".mixer", "is required (a plugin table, \"none\", or streams = [...] instead)");
    }
    if (!table->contains("ffn")) error(&n, field + ".ffn", "is required (a plugin table, or \"none\")");
    if (t.mixer.none && !t.streams && t.ffn.none) error(&n, field, "mixer and ffn are both \"none\"; a layer needs at least one");
    return t;
  }

  void read_model_lists(const toml::table& model, ExperimentConfig& c) {
    if (const auto* templates = model.get("templates")) {
      if (!templates->is_table()) error(templates, "model.templates", "expected tables [model.templates.NAME]");
      else
        for (const auto& [k, v] : *templates->as_table())
          c.model.templates[std::string(k.str())] = read_template(v, "model.templates." + std::string(k.str()), c);
    }
    const auto* schedule = model.get("schedule");
    if (!schedule) error(&model, "model.schedule", "is required: [[model.schedule]] template = \"...\", repeat = N");
    else if (!schedule->is_array_of_tables() || schedule->as_array()->empty())
      error(schedule, "model.schedule", "expected one or more [[model.schedule]] tables");
    else
      for (const auto& entry : *schedule->as_array()) {
        const auto& t = *entry.as_table();
        ScheduleEntry e;
        e.pos = pos_of(entry, file_);
        for (const auto& [k, v] : t) {
          std::string key(k.str());
          if (key == "template") {
            if (!v.is_string()) error(&v, "model.schedule.template", "expected a template name");
            else e.template_name = v.as_string()->get();
          } else if (key == "repeat") {
            auto r = v.value<int64_t>();
            if (!v.is_integer() || !r || *r < 1 || *r > limits::kLayers)
              error(&v, "model.schedule.repeat", "expected an integer in 1 .. " + std::to_string(limits::kLayers));
            else e.repeat = *r;
          } else if (key == "depth_gating") {
            e.depth_gating = read_depth_gating(v, "model.schedule.depth_gating", c);
          } else {
            error(&v, "model.schedule." + key, "unknown key" + did_you_mean(key, {"template", "repeat", "depth_gating"}));
          }
        }
        if (e.template_name.empty()) error(&entry, "model.schedule.template", "is required");
        else if (!c.model.templates.count(e.template_name)) {
          std::vector<std::string> names;
          for (const auto& [name, tpl] : c.model.templates) names.push_back(name);
          std::string list;
          for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
          error(&entry, "model.schedule.template",
                "no template named \"" + e.template_name + "\"" + did_you_mean(e.template_name, names) +
                    "; defined: " + (list.empty() ? "(none)" : list));
        }
        c.model.schedule.push_back(e);
      }
    int64_t n_layers = 0;
    for (const auto& e : c.model.schedule) n_layers += e.repeat;
    if (n_layers > limits::kLayers)
      error(schedule, "model.schedule", "the repeats add up to " + std::to_string(n_layers) + " layers; at most " +
                                            std::to_string(limits::kLayers));
    if (const auto* overrides = model.get("overrides")) {
      if (!overrides->is_array_of_tables()) {
        error(overrides, "model.overrides", "expected [[model.overrides]] tables with layer = N");
      } else {
        int64_t n_layers = 0;
        for (const auto& e : c.model.schedule) n_layers += e.repeat;
        for (const auto& entry : *overrides->as_array()) {
          const auto& t = *entry.as_table();
          auto layer = t["layer"].value<int64_t>();
          if (!layer || *layer < 0 || *layer >= n_layers) {
            error(&entry, "model.overrides.layer",
                  "expected a layer index in [0, " + std::to_string(n_layers) + ")");
            continue;
          }
          c.model.overrides[*layer] = read_template(entry, "model.overrides", c);
        }
      }
    }
  }

  void read_options(const toml::table& data, ExperimentConfig& c) {
    const auto* options = data.get("options");
    if (!options) return;
    if (!options->is_table()) {
      error(options, "data.options", "expected a table of numbers");
      return;
    }
    for (const auto& [k, v] : *options->as_table()) {
      auto d = v.value<double>();
      if (!d || !std::isfinite(*d)) error(&v, "data.options." + std::string(k.str()), "expected a finite number");
      else c.data.options[std::string(k.str())] = *d;
    }
  }

  // One key of a section; a table of keys (`mtp = { depth = 1 }`) when the schema has keys below it.
  void read_key(const std::string& key, const toml::node& vv, const std::vector<std::string>& all_keys,
                ExperimentConfig& c) {
    if (is_free_form(key)) return;
    if (const Field* f = find_field(key)) {
      if (auto problem = f->read(vv, c)) error(&vv, key, *problem);
      return;
    }
    std::vector<std::string> below;
    for (const auto& a : all_keys)
      if (a.rfind(key + ".", 0) == 0) below.push_back(a.substr(key.size() + 1));
    if (!below.empty()) {
      if (const auto* t = vv.as_table())
        for (const auto& [k, v] : *t) read_key(key + "." + std::string(k.str()), v, all_keys, c);
      else error(&vv, key, "expected a table with keys " + join(below) + ", got " + describe_value(vv));
      return;
    }
    const std::string parent = key.substr(0, key.rfind('.')), name = key.substr(key.rfind('.') + 1);
    std::vector<std::string> in_parent;
    for (const auto& a : all_keys)
      if (a.rfind(parent + ".", 0) == 0) in_parent.push_back(a.substr(parent.size() + 1));
    std::string suggestion = did_you_mean(name, in_parent);
    if (suggestion.empty()) suggestion = did_you_mean(key, all_keys);
    error(&vv, key, "unknown key" + suggestion + "; [" + parent + "] keys: " + join(in_parent));
  }

  static std::string join(const std::vector<std::string>& items) {
    std::string list;
    for (const auto& a : items) list += (list.empty() ? "" : ", ") + a;
    return list;
  }

  // [execution_modes.NAME]: budget, temperature, top_k, transition = { to, special_token, budget_exhausted }.
  void read_execution_modes(const toml::node& section, ExperimentConfig& c) {
    const std::string root = kExecutionModes;
    const auto* modes = section.as_table();
    if (!modes || modes->empty()) {
      error(&section, root, "expected one or more tables [execution_modes.NAME]");
      return;
    }
    for (const auto& [k, v] : *modes) {
      const std::string name(k.str()), field = root + "." + name;
      const auto* t = v.as_table();
      if (!t) {
        error(&v, field, "expected a table (budget, temperature, top_k, transition)");
        continue;
      }
      ExperimentConfig::ExecutionMode mode;
      mode.pos = pos_of(v, file_);
      for (const auto& [kk, vv] : *t) {
        const std::string key(kk.str()), at = field + "." + key;
        if (key == "budget") {
          auto b = vv.value<int64_t>();
          if (!vv.is_integer() || !b || *b < 0 || *b > limits::kGeneratedTokens)
            error(&vv, at, "expected an integer in 0 .. " + std::to_string(limits::kGeneratedTokens) + ", got " +
                               describe_value(vv));
          else mode.budget = *b;
        } else if (key == "temperature") {
          auto x = vv.value<double>();
          if (!(vv.is_floating_point() || vv.is_integer()) || !x || !std::isfinite(*x) || *x < 0)
            error(&vv, at, "expected a number >= 0 (0: greedy), got " + describe_value(vv));
          else mode.temperature = *x;
        } else if (key == "top_k") {
          auto x = vv.value<int64_t>();
          if (!vv.is_integer() || !x || *x < 0 || *x > limits::kVocab)
            error(&vv, at, "expected an integer in 0 .. " + std::to_string(limits::kVocab) + ", got " + describe_value(vv));
          else mode.top_k = *x;
        } else if (key == "transition") {
          read_transition(vv, at, mode);
        } else {
          error(&vv, at, "unknown key" + did_you_mean(key, {"budget", "temperature", "top_k", "transition"}) +
                             "; a mode's keys: budget, temperature, top_k, transition");
        }
      }
      if (mode.transition.budget_exhausted && mode.budget == 0)
        error(t->get("transition"), field + ".transition.budget_exhausted",
              "needs the mode's budget (a number of tokens > 0)");
      c.execution_modes[name] = mode;
    }
    check_mode_chains(*modes, c);
  }

  void read_transition(const toml::node& n, const std::string& field, ExperimentConfig::ExecutionMode& mode) {
    const auto* t = n.as_table();
    if (!t) {
      error(&n, field, "expected a table { to = \"MODE\", special_token = \"...\", budget_exhausted = true }");
      return;
    }
    auto& tr = mode.transition;
    for (const auto& [k, v] : *t) {
      const std::string key(k.str()), at = field + "." + key;
      if (key == "to" || key == "special_token") {
        if (!v.is_string() || v.as_string()->get().empty()) {
          error(&v, at, "expected a non-empty string, got " + describe_value(v));
          continue;
        }
        (key == "to" ? tr.to : tr.special_token) = v.as_string()->get();
        if (key == "special_token") tr.token_pos = position(&v, at);
      } else if (key == "budget_exhausted") {
        if (!v.is_boolean()) error(&v, at, "expected true or false, got " + describe_value(v));
        else tr.budget_exhausted = v.as_boolean()->get();
      } else {
        error(&v, at, "unknown key" + did_you_mean(key, {"to", "special_token", "budget_exhausted"}) +
                          "; a transition's keys: to, special_token, budget_exhausted");
      }
    }
    if (tr.to.empty()) error(&n, field + ".to", "is required (the mode that follows)");
    if (tr.special_token.empty()) error(&n, field + ".special_token", "is required (the token that ends the mode)");
  }

  // Every transition leads to a declared mode, and no chain of transitions comes back to a mode.
  void check_mode_chains(const toml::table& modes, const ExperimentConfig& c) {
    for (const auto& [name, mode] : c.execution_modes) {
      const auto* node = modes.get(name);
      if (!mode.transition.to.empty() && !c.execution_modes.count(mode.transition.to)) {
        std::vector<std::string> names;
        for (const auto& [n, m] : c.execution_modes) names.push_back(n);
        error(node, std::string(kExecutionModes) + "." + name + ".transition.to",
              "no mode named \"" + mode.transition.to + "\"" + did_you_mean(mode.transition.to, names) +
                  "; declared: " + join(names));
        continue;
      }
      std::set<std::string> seen{name};
      for (std::string at = mode.transition.to; !at.empty();) {
        auto next = c.execution_modes.find(at);
        if (next == c.execution_modes.end()) break;  // reported for the mode that names it
        if (!seen.insert(at).second) {
          error(node, std::string(kExecutionModes) + "." + name + ".transition.to",
                "the transitions from \"" + name + "\" come back to \"" + at +
                    "\"; a chain of modes must end in a mode without a transition");
          break;
        }
        at = next->second.transition.to;
      }
    }
  }

  ExperimentConfig read(toml::table& root) {
    ExperimentConfig c;
    std::set<std::string> sections;
    std::vector<std::string> all_keys;
    for (const auto& f : schema_fields()) {
      sections.insert(f.key.substr(0, f.key.find('.')));
      all_keys.push_back(f.key);
    }
    sections.insert(kExecutionModes);
    std::vector<std::string> section_list(sections.begin(), sections.end());
    for (const auto& [k, v] : root) {
      std::string section(k.str());
      if (!sections.count(section)) {
        error(&v, section, "unknown section" + did_you_mean(section, section_list));
        continue;
      }
      if (!v.is_table()) {
        error(&v, section, "expected a table [" + section + "]");
        continue;
      }
      for (const auto& [kk, vv] : *v.as_table()) read_key(section + "." + std::string(kk.str()), vv, all_keys, c);
    }
    for (const auto& f : schema_fields())
      if (f.required && !root.at_path(f.key)) error(nullptr, f.key, "is required (" + f.help + ")");
    if (const auto* model = root.get_as<toml::table>("model")) read_model_lists(*model, c);
    if (const auto* data = root.get_as<toml::table>("data")) read_options(*data, c);
    if (const auto* modes = root.get(kExecutionModes)) read_execution_modes(*modes, c);
    cross_checks(root, c);
    return c;
  }

  void cross_checks(toml::table& root, const ExperimentConfig& c) {
    if (c.data.seq_len > 0 && c.model.max_seq_len > 0 && c.data.seq_len > c.model.max_seq_len)
      error(root.at_path("data.seq_len").node(), "data.seq_len",
            "seq_len " + std::to_string(c.data.seq_len) + " exceeds model.max_seq_len " +
                std::to_string(c.model.max_seq_len));
    // Each bounded on its own, the sizes could still multiply past what a run can count.
    const double tokens = static_cast<double>(c.training.batch_size) * static_cast<double>(c.training.grad_accum_steps) *
                          static_cast<double>(c.data.seq_len) * static_cast<double>(c.training.steps);
    if (tokens > limits::kTokens)
      error(root.at_path("training.steps").node(), "training.steps",
            "steps x batch_size x grad_accum_steps x data.seq_len is " + number_text(tokens) +
                " tokens; at most 4e18 can be counted");
    if (c.tokenizer.kind == "sentencepiece" && c.tokenizer.vocab_size < 16)
      error(root.at_path("tokenizer.kind").node(), "tokenizer.vocab_size",
            "sentencepiece needs vocab_size >= 16 (e.g. 2048)");
    if (c.model.mtp.depth > 0 && c.data.seq_len > 0 && c.model.mtp.depth >= c.data.seq_len)
      error(root.at_path("model.mtp.depth").node(), "model.mtp.depth",
            "depth " + std::to_string(c.model.mtp.depth) + " leaves no position to predict from in data.seq_len " +
                std::to_string(c.data.seq_len) + " (module k predicts from T - k positions)");
    if (c.model.mtp.depth > 0 && !c.layers().empty() && c.layers().back().streams)
      error(root.at_path("model.mtp.depth").node(), "model.mtp.depth",
            "the last layer has parallel streams; a multi-token prediction module repeats the last layer's "
            "mixer and ffn, and has no streams");
    // A byte vocabulary has one piece per byte; other tokenizers are asked when they exist
    // (model/generation.hpp: require_transition_tokens).
    for (const auto& [name, mode] : c.execution_modes) {
      const auto& token = mode.transition.special_token;
      if (c.tokenizer.kind == "byte" && !token.empty() && token.size() != 1)
        diagnostics_.push_back(Diagnostic{mode.transition.token_pos, std::string(kExecutionModes) + "." + name +
                                                                       ".transition.special_token",
                                          "\"" + token + "\" is " + std::to_string(token.size()) +
                                              " bytes, not one piece of the byte vocabulary: a transition token must "
                                              "be a single vocabulary piece (with tokenizer.kind = \"byte\", one "
                                              "ASCII character such as \"\\u001e\")"});
    }
    check_readout(root, c);
    if (!c.tokenizer.model_file.empty() && c.tokenizer.kind != "sentencepiece")
      error(root.at_path("tokenizer.model_file").node(), "tokenizer.model_file",
            "a model file needs tokenizer.kind = \"sentencepiece\"");
  }

  // The autoencoder readout (model/readout.hpp) and builtin:compression need each other.
  void check_readout(toml::table& root, const ExperimentConfig& c) {
    const bool autoencoder = c.model.readout == "autoencoder", compression = c.data.source == "builtin:compression";
    const auto* readout = root.at_path("model.readout").node();
    if (compression && !autoencoder)
      error(root.at_path("data.source").node(), "data.source",
            "builtin:compression needs model.readout = \"autoencoder\": its targets are the input itself, which a "
            "causal language model sees at each position it is asked to reconstruct");
    if (!autoencoder) return;
    if (!compression && !c.data.source.empty())
      error(readout, "model.readout",
            "\"autoencoder\" reconstructs the input sequence, so it trains on builtin:compression only (data.source "
            "is \"" + c.data.source + "\", whose targets are not its input)");
    if (c.model.d_model % 2 != 0 || c.model.d_model < 4)
      error(readout, "model.readout",
            "\"autoencoder\" needs an even model.d_model >= 4 (its sin-cos position embedding pairs the channels), "
            "got " + std::to_string(c.model.d_model));
    if (c.model.mtp.depth > 0)
      error(readout, "model.readout",
            "\"autoencoder\" makes no next-token predictions for multi-token prediction to extend: set "
            "model.mtp.depth = 0");
  }

  std::vector<Diagnostic> diagnostics_;

 private:
  std::string file_;
  std::map<std::string, std::string> overridden_;  // field -> "key=value" given with --set
};

}  // namespace

std::string SourcePos::str() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string PluginChoice::label() const {
  if (none) return "none";
  return plugin + (impl ? "/" + *impl : "") + (version ? "@" + *version : "");
}

std::vector<LayerSlot<const PluginChoice*>> LayerTemplate::plugins() const {
  std::vector<LayerSlot<const PluginChoice*>> out;
  if (!mixer.none) out.push_back({"mixer", &mixer, std::nullopt});
  if (streams)
    for (size_t k = 0; k < streams->streams.size(); ++k)
      out.push_back({"streams." + std::to_string(k) + ".mixer", &streams->streams[k].mixer, k});
  if (!ffn.none) out.push_back({"ffn", &ffn, std::nullopt});
  return out;
}

std::vector<LayerTemplate> ExperimentConfig::layers() const {
  std::vector<LayerTemplate> out;
  for (const auto& e : model.schedule) {
    auto it = model.templates.find(e.template_name);
    if (it == model.templates.end()) continue;
    for (int64_t i = 0; i < e.repeat; ++i) {
      out.push_back(it->second);
      if (e.depth_gating) out.back().depth_gating = e.depth_gating;
    }
  }
  for (const auto& [index, layer] : model.overrides)
    if (index < static_cast<int64_t>(out.size())) out[static_cast<size_t>(index)] = layer;
  return out;
}

nlohmann::json ExperimentConfig::to_json() const {
  nlohmann::json j;
  for (const auto& f : schema_fields()) {  // "model.mtp.depth" -> {"model": {"mtp": {"depth": ...}}}
    std::string pointer = "/" + f.key;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    j[nlohmann::json::json_pointer(pointer)] = f.write(*this);
  }
  // model.readout came after runs were recorded: written only when not the default, so every
  // config without it keeps its JSON and sha256 (manifests, the ranks' check).
  if (model.readout == "lm") j["model"].erase("readout");
  auto choice = [](const PluginChoice& c) {
    if (c.none) return nlohmann::json("none");
    nlohmann::json out = c.config;
    out["plugin"] = c.plugin;
    if (c.impl) out["impl"] = *c.impl;
    if (c.version) out["version"] = *c.version;
    return out;
  };
  auto gating = [](const DepthGating& g) {
    return nlohmann::json{{"capacity", g.capacity}, {"router", g.router}, {"aux_loss", g.aux_loss}};
  };
  auto layer = [&](const LayerTemplate& t) {
    nlohmann::json out{{"mixer", choice(t.mixer)}, {"ffn", choice(t.ffn)}};
    if (t.depth_gating) out["depth_gating"] = gating(*t.depth_gating);
    if (t.streams) {
      out.erase("mixer");
      out["streams"] = nlohmann::json::array();
      for (const auto& s : t.streams->streams) {
        nlohmann::json stream{{"mixer", choice(s.mixer)}};
        if (s.width) stream["width"] = s.width;
        out["streams"].push_back(stream);
      }
      out["merge"] = t.streams->merge;
      if (t.streams->merge == "cross_attn") out["merge_heads"] = t.streams->merge_heads;
    }
    return out;
  };
  for (const auto& [name, t] : model.templates) j["model"]["templates"][name] = layer(t);
  j["model"]["schedule"] = nlohmann::json::array();
  for (const auto& e : model.schedule) {
    nlohmann::json entry{{"template", e.template_name}, {"repeat", e.repeat}};
    if (e.depth_gating) entry["depth_gating"] = gating(*e.depth_gating);
    j["model"]["schedule"].push_back(entry);
  }
  if (!model.overrides.empty()) {
    j["model"]["overrides"] = nlohmann::json::array();
    for (const auto& [i, t] : model.overrides) {
      nlohmann::json entry = layer(t);
      entry["layer"] = i;
      j["model"]["overrides"].push_back(entry);
    }
  }
  j["data"]["options"] = data.options;
  for (const auto& [name, m] : execution_modes) {
    auto& out = j[kExecutionModes][name];
    out["budget"] = m.budget;
    if (m.temperature) out["temperature"] = *m.temperature;
    if (m.top_k) out["top_k"] = *m.top_k;
    if (!m.transition.to.empty())
      out["transition"] = {{"to", m.transition.to}, {"special_token", m.transition.special_token},
                           {"budget_exhausted", m.transition.budget_exhausted}};
  }
  return j;
}

std::string Diagnostic::str() const { return pos.str() + ": " + field + ": " + message; }

ExperimentError::ExperimentError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error([&] {
        std::string s = std::to_string(diagnostics.size()) + " problem" + (diagnostics.size() == 1 ? "" : "s") +
                        " in the experiment:";
        for (const auto& d : diagnostics) s += "\n  " + d.str();
        return s;
      }()),
      diagnostics_(std::move(diagnostics)) {}

ExperimentConfig load_experiment(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw ExperimentError({Diagnostic{SourcePos{name, 0, 0}, "file", "no such experiment file (or not readable)"}});
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ExperimentError({Diagnostic{SourcePos{name, 0, 0}, "file", "cannot read the experiment file"}});
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_experiment(text, file, overrides);
}

ExperimentConfig parse_experiment(std::string_view text, const std::filesystem::path& file,
                                  const std::vector<std::string>& overrides) {
  std::string name = file.string();
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ExperimentError({Diagnostic{SourcePos{name, static_cast<int64_t>(s.begin.line), static_cast<int64_t>(s.begin.column)},
                                      "syntax", "invalid TOML: " + std::string(e.description())}});
  }
  Loader loader(name);
  for (const auto& o : overrides) loader.apply_override(root, o);
  ExperimentConfig config = loader.read(root);
  // Plugin folders and a tokenizer model file are relative to the experiment file.
  for (auto& p : config.job.plugin_path)
    if (std::filesystem::path(p).is_relative()) p = (file.parent_path() / p).lexically_normal().string();
  auto& model_file = config.tokenizer.model_file;
  if (!model_file.empty() && std::filesystem::path(model_file).is_relative())
    model_file = (file.parent_path() / model_file).lexically_normal().string();
  if (!loader.diagnostics_.empty()) throw ExperimentError(loader.diagnostics_);
  return config;
}

}  // namespace mixlab
