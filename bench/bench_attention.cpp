// Attention implementations side by side: reference (T x T scores), flash
// (tiled online softmax, recomputing backward), sdpa (LibTorch's fused
// kernel) and sdpa with kernels = "reference" (LibTorch's own backward where
// the fused form has its own: causal bfloat16 on the CPU), loaded through the
// plugin ABI as a run loads them. For each T: forward time, forward+backward
// time, and peak extra resident memory of a forward+backward; memory per
// doubling of T shows flash linear, reference quadratic.
//
//   bench_attention [--min-t 256] [--max-t 2048] [--rounds 3] [--d-model 256]
//                   [--heads 4] [--batch 1] [--dtype float32|bfloat16]
//                   [--window W] [--tile N] [--plugins DIR] [--markdown FILE]
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <filesystem>

#include <malloc.h>

using namespace mixlab;
using namespace mixlab::bench;

namespace {

struct Options {
  int64_t min_t = 256;
  int64_t max_t = 2048;
  int rounds = 3;
  int64_t d_model = 256;
  int64_t heads = 4;
  int64_t batch = 1;
  std::string dtype = "float32";
  int64_t window = 0;
  int64_t tile = 0;  // 0: the plugin's default flash_tile
  std::filesystem::path plugins = mixlab::bench::default_plugin_dir();
  std::string markdown;
};

Options parse(int argc, char** argv) {
  Options o;
  CLI::App app{"attention: reference vs flash vs sdpa, time and peak memory against T"};
  app.add_option("--min-t", o.min_t, "smallest T (doubling from it)");
  app.add_option("--max-t", o.max_t, "largest T");
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--heads", o.heads, "attention heads");
  app.add_option("--batch", o.batch, "sequences per call");
  app.add_option("--dtype", o.dtype, "parameters and activations")->check(CLI::IsMember({"float32", "bfloat16"}));
  app.add_option("--window", o.window, "sliding window (0: global)");
  app.add_option("--tile", o.tile, "flash tile (0: the plugin's default)");
  app.add_option("--plugins", o.plugins, "plugin folder");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  torch::manual_seed(0);
  Registry registry;
  registry.add_folder(o.plugins);
  const auto dtype = o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  std::string config = "{\"n_heads\": " + std::to_string(o.heads) +
                       (o.window > 0 ? ", \"window\": " + std::to_string(o.window) : "") +
                       (o.tile > 0 ? ", \"flash_tile\": " + std::to_string(o.tile) : "");
  struct Candidate {
    std::string label, impl, extra;
  };
  const std::vector<Candidate> impls{{"reference", "reference", ""},
                                     {"flash", "flash", ""},
                                     {"sdpa", "sdpa", ""},
                                     {"sdpa, kernels reference", "sdpa", ", \"kernels\": \"reference\""}};
  std::vector<std::shared_ptr<PluginInstance>> instances;
  std::vector<std::vector<torch::Tensor>> params;
  for (const auto& c : impls) {
    instances.push_back(PluginInstance::create(registry.select({"attention", c.impl, std::nullopt}), o.d_model,
                                               o.max_t, config + c.extra + "}"));
    params.push_back(instances.back()->init_params(dtype, torch::kCPU, 1, 0.02));
  }
  std::cout << "attention, " << o.dtype << ", CPU, batch " << o.batch << ", d_model " << o.d_model << ", config "
            << config << "}, " << torch::get_num_threads() << " threads, median of " << o.rounds
            << " interleaved rounds\n\n";

  // Two passes: times with the allocator as a run has it; then memory with
  // every buffer of a page or more mmapped and free heap pages trimmed, so
  // that the resident high-water mark of one call measures that call.
  std::vector<int64_t> lengths;
  for (int64_t T = o.min_t; T <= o.max_t; T *= 2) lengths.push_back(T);
  auto candidates = [&](int64_t T, bool train) {
    auto x = torch::randn({o.batch, T, o.d_model}).to(dtype), gy = torch::randn({o.batch, T, o.d_model}).to(dtype);
    std::vector<std::function<void()>> out;
    for (size_t i = 0; i < impls.size(); ++i)
      out.push_back([&, i, x, gy, train] {
        if (!train) {
          torch::NoGradGuard no_grad;
          instances[i]->forward(x, params[i]);
          return;
        }
        auto xg = x.clone().requires_grad_(true);
        (instances[i]->forward(xg, params[i]).y * gy).sum().backward();
        for (auto& p : params[i]) p.mutable_grad() = torch::Tensor();
      });
    return out;
  };
  std::vector<std::vector<double>> fwd, train, mib;
  for (int64_t T : lengths) {
    fwd.push_back(interleaved_medians(candidates(T, false), o.rounds));
    train.push_back(interleaved_medians(candidates(T, true), o.rounds));
    std::cerr << "timed T=" << T << "\n";
  }
  mallopt(M_MMAP_THRESHOLD, 4096);
  for (int64_t T : lengths) {
    mib.emplace_back();
    for (auto& c : candidates(T, true)) {
      malloc_trim(0);  // free heap pages the timing pass left resident
      mib.back().push_back(peak_extra_mib(c));
    }
  }

  Table table({"T", "impl", "fwd ms", "fwd+bwd ms", "fwd+bwd vs reference", "peak extra MiB", "MiB x per 2x T"});
  for (size_t t = 0; t < lengths.size(); ++t)
    for (size_t i = 0; i < impls.size(); ++i)
      table.add({std::to_string(lengths[t]), impls[i].label, fmt(fwd[t][i] * 1e3), fmt(train[t][i] * 1e3),
                 fmt(train[t][i] / train[t][0], 2), fmt(mib[t][i], 4),
                 t == 0 || mib[t - 1][i] <= 0 ? "-" : fmt(mib[t][i] / mib[t - 1][i], 3)});
  table.print();
  std::cout << "\npeak extra MiB: resident high-water mark of one forward+backward above the level before it.\n"
               "MiB x per 2x T: that over the same at T/2 (2 = linear in T, 4 = quadratic).\n";
  if (!o.markdown.empty()) table.write_markdown(o.markdown);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_attention: " << e.what() << "\n";
  return 1;
}
