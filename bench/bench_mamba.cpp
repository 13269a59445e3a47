// bench_mamba: the Mamba-2 block's two SSD cores, loaded through the plugin ABI
// as a run loads them. Reports, measured side by side in one run:
//   - chunked time at the longest length over time at the shortest (linear scaling:
//     4096 / 1024 gives about 4),
//   - recurrent time over chunked time at each length,
//   - peak extra resident memory of one forward+backward (CPU only).
//
//   bench_mamba [--d-model 128] [--batch 1] [--lengths 1024,4096] [--rounds 5]
//               [--dtype float32|float64|bfloat16] [--device cpu|cuda]
//               [--config '{...}'] [--plugins DIR] [--markdown FILE]
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <filesystem>
#include <map>
#include <sstream>

using namespace mixlab;
using namespace mixlab::bench;

namespace {

struct Options {
  int64_t d_model = 128, batch = 1;
  std::vector<int64_t> lengths{1024, 4096};
  int rounds = 5;
  torch::ScalarType dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  std::string config = "{}";
  std::filesystem::path plugins;
  std::string markdown;
};


Options parse(int argc, char** argv) {
  Options o;
  o.plugins = mixlab::bench::default_plugin_dir();
  std::string dtype = "float32", device = "cpu";
  CLI::App app{"mamba: chunked vs recurrent, scaling in T"};
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--lengths", o.lengths, "sequence lengths")->delimiter(',');
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--dtype", dtype, "float32 | float64 | bfloat16");
  app.add_option("--device", device, "cpu | cuda");
  app.add_option("--config", o.config, "plugin config as JSON");
  app.add_option("--plugins", o.plugins, "plugin folder");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  o.dtype = mixlab::bench::dtype_named(dtype);
  o.device = torch::Device(device);
  return o;
}

// One implementation at one length: its instance, weights and inputs.
struct Case {
  std::string impl;
  int64_t T;
  std::shared_ptr<PluginInstance> inst;
  std::vector<torch::Tensor> params;
  torch::Tensor x;

  void forward() const {
    torch::NoGradGuard no_grad;
    inst->forward(x, params);
  }
  void train_step() const {
    auto y = inst->forward(x, params, {true, 0}).y;
    y.sum().backward();
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  Registry registry;
  registry.add_folder(o.plugins);
  std::vector<std::string> impls{"chunked", "recurrent"};
  std::vector<Case> cases;
  for (const auto& impl : impls) {
    auto ref = registry.select({"mamba", impl, std::nullopt});
    for (int64_t T : o.lengths) {
      auto inst = PluginInstance::create(ref, o.d_model, T, o.config);
      auto params = inst->init_params(o.dtype, o.device, 1, 0.02);
      for (auto& p : params) p.requires_grad_(true);
      auto x = torch::randn({o.batch, T, o.d_model}, torch::TensorOptions().dtype(o.dtype).device(o.device));
      cases.push_back({impl, T, inst, params, x});
    }
  }

  std::vector<std::function<void()>> forwards, train_steps;
  for (const auto& c : cases) {
    forwards.push_back([&c] { c.forward(); });
    train_steps.push_back([&c] { c.train_step(); });
  }
  auto forward_s = interleaved_medians(forwards, o.rounds, o.device);
  auto train_s = interleaved_medians(train_steps, o.rounds, o.device);
  std::vector<double> peak_mib;
  for (const auto& c : cases) peak_mib.push_back(o.device.is_cpu() ? peak_extra_mib([&c] { c.train_step(); }) : -1);

  auto index = [&](const std::string& impl, int64_t T) {
    for (size_t i = 0; i < cases.size(); ++i)
      if (cases[i].impl == impl && cases[i].T == T) return i;
    return size_t{0};
  };
  const int64_t shortest = o.lengths.front();
  Table table({"impl", "T", "forward ms", "fwd+bwd ms", "fwd us/token", "fwd / fwd(T=" + std::to_string(shortest) + ")",
               "recurrent / chunked (fwd, fwd+bwd)", "peak extra MiB (fwd+bwd)"});
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    size_t base = index(c.impl, shortest), chunked = index("chunked", c.T), recurrent = index("recurrent", c.T);
    table.add({c.impl, std::to_string(c.T), fmt(forward_s[i] * 1e3), fmt(train_s[i] * 1e3),
               fmt(forward_s[i] * 1e6 / static_cast<double>(c.T * o.batch)),
               fmt(forward_s[i] / forward_s[base]) + " (fwd+bwd " + fmt(train_s[i] / train_s[base]) + ")",
               fmt(forward_s[recurrent] / forward_s[chunked]) + ", " + fmt(train_s[recurrent] / train_s[chunked]),
               peak_mib[i] < 0 ? "n/a" : fmt(peak_mib[i])});
  }
  std::cout << "mamba (Mamba-2 block): d_model " << o.d_model << ", batch " << o.batch << ", "
            << c10::toString(o.dtype) << " on " << o.device << ", config " << o.config << ", median of " << o.rounds
            << " interleaved rounds, torch threads " << torch::get_num_threads() << "\n";
  table.print();
  if (!o.markdown.empty()) table.write_markdown(o.markdown);
  return 0;
}
