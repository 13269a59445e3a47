// `host plugins` and `host plugins info NAME`.
#include "cli/commands.hpp"
#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

namespace mixlab::cli {

std::string capabilities(uint64_t caps) {
  std::vector<std::pair<uint64_t, const char*>> names{
      {MIXLAB_CAP_CPU, "cpu"},           {MIXLAB_CAP_CUDA, "cuda"},       {MIXLAB_CAP_FLOAT32, "f32"},
      {MIXLAB_CAP_FLOAT64, "f64"},       {MIXLAB_CAP_BFLOAT16, "bf16"},   {MIXLAB_CAP_FLOAT16, "f16"},
      {MIXLAB_CAP_DECODE, "decode"},     {MIXLAB_CAP_CUSTOM_BACKWARD, "custom-backward"},
      {MIXLAB_CAP_DETERMINISTIC, "deterministic"}, {MIXLAB_CAP_REENTRANT, "reentrant"},
      {MIXLAB_CAP_PREFERRED, "preferred"}};
  std::string out;
  for (auto [bit, name] : names)
    if (caps & bit) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

namespace {

int list_plugins() {
  Registry r = Registry::discover();
  std::cout << std::left << std::setw(7) << "FAMILY" << std::setw(12) << "NAME" << std::setw(12) << "IMPL"
            << std::setw(9) << "VERSION" << std::setw(5) << "ABI" << std::setw(64) << "CAPABILITIES" << "FILE\n";
  for (const auto& ref : r.impls()) {
    const auto& d = ref.library->descriptor();
    std::cout << std::left << std::setw(7) << ref.family() << std::setw(12) << ref.impl->name << std::setw(12)
              << ref.impl->impl << std::setw(9) << ref.version.str() << std::setw(5)
              << (std::to_string(d.abi_major) + "." + std::to_string(d.abi_minor)) << std::setw(64)
              << capabilities(ref.impl->caps) << ref.library->path().string() << "\n";
  }
  if (r.impls().empty()) {
    std::cout << "(no plugins found) searched:";
    for (const auto& f : r.folders()) std::cout << " " << f.string();
    std::cout << "\n";
  }
  for (const auto& [file, why] : r.refused()) std::cout << "refused: " << why << "\n";
  return 0;
}

int plugin_info(const Selector& sel, const std::string& config, int64_t d_model,
                int64_t max_seq_len) {
  Registry r = Registry::discover();
  ImplRef ref = r.select(sel);
  auto inst = PluginInstance::create(ref, d_model, max_seq_len, config);
  std::cout << ref.label() << " (" << ref.family() << ")  " << ref.impl->description << "\n"
            << "  file: " << ref.library->path().string() << "\n"
            << "  capabilities: " << capabilities(ref.impl->caps) << "\n"
            << "  causality bound: " << ref.impl->causality_bound << "\n"
            << "  config: " << config << "  (d_model " << d_model << ", max_seq_len " << max_seq_len << ")\n"
            << "  parameters (" << inst->n_parameters() << " values):\n";
  static const char* inits[] = {"zeros", "ones", "constant", "normal", "uniform", "plugin"};
  for (const auto& p : inst->params()) {
    std::ostringstream shape;
    shape << "(";
    for (size_t i = 0; i < p.shape.size(); ++i) shape << (i ? ", " : "") << p.shape[i];
    shape << ")";
    std::ostringstream init;
    init << inits[std::clamp(p.init, 0, 5)];
    if (p.init == MIXLAB_INIT_NORMAL) init << "(" << p.a << ", " << (p.b > 0 ? std::to_string(p.b) : "init_std") << ")";
    if (p.init == MIXLAB_INIT_UNIFORM) init << "(" << p.a << ", " << p.b << ")";
    if (p.init == MIXLAB_INIT_CONSTANT) init << "(" << p.a << ")";
    std::cout << "    " << std::left << std::setw(16) << p.name << std::setw(18) << shape.str() << std::setw(22)
              << init.str() << (p.weight_decay() ? "" : "no-decay  ") << p.description << "\n";
  }
  if (!inst->sides().empty()) std::cout << "  side outputs:\n";
  for (const auto& s : inst->sides())
    std::cout << "    " << std::left << std::setw(16) << s.name
              << (s.kind == MIXLAB_SIDE_AUX_LOSS         ? "aux loss x " + std::to_string(s.coefficient)
                  : s.kind == MIXLAB_SIDE_TOKEN_STATISTIC ? std::string("per-token statistic")
                                                          : std::string("statistic"))
              << "  " << s.description << "\n";
  auto c = inst->cost(max_seq_len, 4);
  std::cout << "  cost at T=" << max_seq_len << ": active params " << c.active_params << ", forward FLOPs/token "
            << c.forward_flops << ", decode state " << c.state_bytes << " bytes (fp32)"
            << (c.state_grows ? ", grows with context" : "") << "\n";
  return 0;
}

}  // namespace

void add_plugins_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("plugins", "list the plugins found on the search path");
  auto* info = cmd->add_subcommand("info", "show one implementation: parameters, side outputs, cost");
  struct InfoArgs {
    Selector sel;
    std::string impl, version, config = "{}";
    int64_t d_model = 256, max_seq_len = 1024;
  };
  static InfoArgs a;
  info->add_option("name", a.sel.plugin, "plugin name")->required();
  info->add_option("--impl", a.impl, "implementation");
  info->add_option("--version", a.version, "version requirement, e.g. ^1.0");
  info->add_option("--config", a.config, "plugin config as JSON");
  info->add_option("--d-model", a.d_model, "model width");
  info->add_option("--max-seq-len", a.max_seq_len, "maximum sequence length");
  info->callback([&] {
    action = [&] {
      if (!a.impl.empty()) a.sel.impl = a.impl;
      if (!a.version.empty()) a.sel.version = a.version;
      return plugin_info(a.sel, a.config, a.d_model, a.max_seq_len);
    };
  });
  cmd->callback([&, info] {
    if (!info->parsed()) action = [&] { return list_plugins(); };
  });
}

}  // namespace mixlab::cli
