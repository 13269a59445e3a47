#include "experiment/loader.hpp"

#include "runtime/host_api.hpp"
#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

namespace mixlab {

Registry experiment_registry(const ExperimentConfig& config) {
  Registry r = Registry::discover();
  for (const auto& p : config.job.plugin_path) r.add_folder(p);
  return r;
}

std::vector<Diagnostic> check_plugins(const ExperimentConfig& config, const Registry& registry) {
  std::vector<Diagnostic> out;
  auto check = [&](const PluginChoice& c, int32_t family, const std::string& field, int64_t width) {
    if (c.plugin.empty()) return;
    auto at = [&](const std::string& key) {
      auto it = c.key_pos.find(key);
      return it == c.key_pos.end() ? c.pos : it->second;
    };
    try {
      ImplRef ref = registry.select({c.plugin, c.impl, c.version});
      if (ref.impl->family != family) {
        out.push_back({at("plugin"), field + ".plugin",
                       "\"" + c.plugin + "\" is " + (ref.impl->family == MIXLAB_FAMILY_MIXER ? "a mixer" : "an FFN") +
                           " plugin, this slot needs " + (family == MIXLAB_FAMILY_MIXER ? "a mixer" : "an FFN")});
        return;
      }
      PluginInstance::create(ref, width, config.model.max_seq_len, c.config.dump());
    } catch (const SelectionError& e) {
      out.push_back({at("plugin"), field + ".plugin", e.what()});
    } catch (const PluginError& e) {
      // Plugin messages start with the offending key ("n_heads: ..."): point at its line.
      std::string msg = e.what();
      auto label_end = msg.find(" config: ");
      std::string body = label_end == std::string::npos ? msg : msg.substr(label_end + 9);
      std::string key = body.substr(0, body.find(':'));
      bool known = c.key_pos.count(key) > 0;
      if (known) body = body.substr(key.size() + 2);  // the key is in the field name
      out.push_back({known ? at(key) : c.pos, field + (known ? "." + key : ""), body});
    }
  };
  // Each plugin at the width it runs at: a stream's own width, d_model otherwise.
  auto check_layer = [&](const LayerTemplate& t, const std::string& field) {
    const int64_t d = config.model.d_model;
    for (const auto& slot : t.plugins())
      check(*slot.plugin, slot.name == "ffn" ? MIXLAB_FAMILY_FFN : MIXLAB_FAMILY_MIXER, field + "." + slot.name,
            slot.stream ? t.streams->streams[*slot.stream].width_or(d) : d);
  };
  for (const auto& [name, t] : config.model.templates) check_layer(t, "model.templates." + name);
  for (const auto& [i, t] : config.model.overrides) check_layer(t, "model.overrides[layer " + std::to_string(i) + "]");
  return out;
}

}  // namespace mixlab
