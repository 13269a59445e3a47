// Hyena `fft` vs `direct` vs causal softmax attention, forward time against
// sequence length: fft grows as T log T, direct and attention as T^2, and the
// table shows where Hyena overtakes attention.
//
// Both Hyena implementations are loaded through the host runtime (Registry ->
// PluginInstance), like a training run loads them. Attention is the
// `attention` plugin (impl `flash`, else `reference`, or --attention-impl)
// when its library is in a plugin folder; otherwise a materialised causal
// softmax attention written below. The output says which one ran.
//
//   bench_hyena [--max-len 4096] [--d-model 256] [--heads 4] [--batch 1] [--rounds 3]
//               [--budget 2] [--threads 1] [--dtype float32] [--attention-impl NAME]
//               [--plugins DIR]... [--markdown FILE]
//
// --plugins (repeatable) replaces the default folder, <build>/plugins.
//
// --max-len 16384 runs the full range (attention then needs ~10 GiB). A
// candidate whose last call took more than --budget seconds is not run at
// larger T (it grows at least 2x per doubling).
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

using namespace mixlab;
using namespace mixlab::bench;

namespace {

struct Options {
  int64_t max_len = 4096;
  int64_t d_model = 256;
  int64_t heads = 4;
  int64_t batch = 1;
  int rounds = 3;
  double budget_s = 2.0;
  int threads = 1;
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<std::string> attention_impls{"flash", "reference"};
  std::vector<std::filesystem::path> plugins;
  std::string markdown;
};

Options parse(int argc, char** argv) {
  Options o;
  std::string dtype = "float32", attention_impl;
  CLI::App app{"hyena: fft vs direct vs attention against T"};
  app.add_option("--max-len", o.max_len, "largest T (from 256, doubling)");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--heads", o.heads, "attention heads of the comparison");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--budget", o.budget_s, "seconds one call may take before a candidate is dropped");
  app.add_option("--threads", o.threads, "ATen threads");
  app.add_option("--dtype", dtype, "float32 | float64 | bfloat16");
  app.add_option("--attention-impl", attention_impl, "attention implementation to compare with");
  app.add_option("--plugins", o.plugins, "plugin folder(s)");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  o.dtype = mixlab::bench::dtype_named(dtype);
  if (!attention_impl.empty()) o.attention_impls = {attention_impl};
  if (o.plugins.empty()) o.plugins.push_back(mixlab::bench::default_plugin_dir());
  return o;
}

// A mixer loaded through the host runtime, with its own parameters.
struct PluginMixer {
  std::shared_ptr<PluginInstance> instance;
  std::vector<torch::Tensor> params;
  torch::Tensor operator()(const torch::Tensor& x) const { return instance->forward(x, params).y; }
};

PluginMixer load(const Registry& registry, const std::string& plugin, const std::string& impl, const Options& o,
                 const std::string& config = "{}") {
  auto ref = registry.select({plugin, impl, std::nullopt});
  auto inst = PluginInstance::create(ref, o.d_model, o.max_len, config);
  return {inst, inst->init_params(o.dtype, torch::kCPU, 1, 0.02)};
}

// Causal softmax attention with the T x T score matrix materialised.
struct MaterialisedAttention {
  int64_t heads;
  torch::Tensor w_qkv, w_out;
  torch::Tensor operator()(const torch::Tensor& x) const {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2), hd = d / heads;
    auto qkv = torch::linear(x, w_qkv).view({B, T, 3, heads, hd}).permute({2, 0, 3, 1, 4});  // (3, B, H, T, hd)
    auto scores = torch::matmul(qkv[0], qkv[1].transpose(-1, -2)) / std::sqrt(static_cast<double>(hd));
    auto future = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool)).triu(1);
    auto o = torch::matmul(torch::softmax(scores.masked_fill(future, -INFINITY), -1), qkv[2]);
    return torch::linear(o.transpose(1, 2).reshape({B, T, d}), w_out);
  }
};

}  // namespace

int main(int argc, char** argv) try {
  Options o = parse(argc, argv);
  torch::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;

  Registry registry;
  for (const auto& folder : o.plugins) registry.add_folder(folder);
  auto fft = load(registry, "hyena", "fft", o);
  auto direct = load(registry, "hyena", "direct", o);

  std::function<torch::Tensor(const torch::Tensor&)> attention;
  std::string attention_label;
  for (const auto& impl : o.attention_impls) {
    try {
      auto plugin = load(registry, "attention", impl, o, "{\"n_heads\": " + std::to_string(o.heads) + "}");
      attention = plugin;
      attention_label = "attention plugin (" + plugin.instance->ref().label() + ")";
      break;
    } catch (const std::exception& e) {
      attention_label = "no attention/" + impl + " plugin: " + e.what();
    }
  }
  if (!attention) {
    auto opts = torch::TensorOptions().dtype(o.dtype);
    attention = MaterialisedAttention{o.heads, torch::randn({3 * o.d_model, o.d_model}, opts) * 0.02,
                                      torch::randn({o.d_model, o.d_model}, opts) * 0.02};
    std::cout << "(" << attention_label << ")\n";
    attention_label = "inline materialised causal softmax attention, " + std::to_string(o.heads) + " heads";
  }

  std::cout << "hyena order 2 (fft, direct) vs " << attention_label << "\nforward only, " << c10::toString(o.dtype)
            << ", B=" << o.batch << ", d_model=" << o.d_model << ", " << o.threads << " thread(s), median of "
            << o.rounds << " interleaved rounds; growth = time(T) / time(T/2): T log T gives ~2.2, T^2 gives 4\n\n";

  const std::vector<std::string> names{"fft", "direct", "attention"};
  std::map<std::string, std::function<torch::Tensor(const torch::Tensor&)>> run{
      {"fft", fft}, {"direct", direct}, {"attention", attention}};
  std::map<std::string, double> last;  // seconds at the previous T; absent once dropped
  for (const auto& n : names) last[n] = 0.0;

  Table table({"T", "fft ms", "direct ms", "attention ms", "direct/fft", "attention/fft", "fft growth",
               "attention growth", "fft ns/(T log2 T)", "fft peak MiB", "attention peak MiB"});
  std::optional<int64_t> crossover;
  for (int64_t T = 256; T <= o.max_len; T *= 2) {
    auto x = torch::randn({o.batch, T, o.d_model}, torch::TensorOptions().dtype(o.dtype));
    std::vector<std::string> active;
    std::vector<std::function<void()>> calls;
    for (const auto& n : names)
      if (last.count(n) && last[n] <= o.budget_s) active.push_back(n), calls.push_back([&, n] { run[n](x); });
      else last.erase(n);
    auto medians = interleaved_medians(calls, o.rounds);
    std::map<std::string, double> now, peak;
    for (size_t i = 0; i < active.size(); ++i) now[active[i]] = medians[i];
    for (const auto& n : {"fft", "attention"})
      if (now.count(n)) peak[n] = peak_extra_mib([&] { run[n](x); });

    auto ms = [&](const std::string& n) { return now.count(n) ? fmt(now[n] * 1e3) : std::string("(skipped)"); };
    auto ratio = [&](const std::string& a) { return now.count(a) && now.count("fft") ? fmt(now[a] / now["fft"]) : "-"; };
    auto growth = [&](const std::string& n) {
      return now.count(n) && last.count(n) && last[n] > 0 ? fmt(now[n] / last[n]) : "-";
    };
    auto mib = [&](const std::string& n) { return peak.count(n) ? fmt(peak[n], 4) : "-"; };
    double t_log_t = static_cast<double>(T) * std::log2(static_cast<double>(T));
    table.add({std::to_string(T), ms("fft"), ms("direct"), ms("attention"), ratio("direct"), ratio("attention"),
               growth("fft"), growth("attention"), now.count("fft") ? fmt(now["fft"] * 1e9 / t_log_t) : "-",
               mib("fft"), mib("attention")});
    if (!crossover && now.count("attention") && now.count("fft") && now["attention"] > now["fft"]) crossover = T;
    for (const auto& [n, t] : now) last[n] = t;
  }
  table.print();
  if (crossover)
    std::cout << "\nhyena fft is faster than attention from T = " << *crossover << " on (within the lengths run)\n";
  else
    std::cout << "\nhyena fft did not overtake attention within the lengths run\n";
  if (!o.markdown.empty()) table.write_markdown(o.markdown);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_hyena: " << e.what() << "\n";
  return 1;
}
