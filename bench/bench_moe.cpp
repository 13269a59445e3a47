// moe: the ways to run the routed experts side by side — `loop` (one FFN call per
// expert), `grouped` (LibTorch's grouped matmul), `sparse` (one batched matmul
// over the expert groups padded to the largest) and optionally `dense` (every
// expert on every token) — as the number of experts grows (top_k and the expert
// width fixed), in each dtype, and against an `mlp` with the same active
// parameters (hidden = top_k · expert_hidden), the cost an MoE layer could reach.
// Forward + backward, through the plugin ABI as a training run calls it.
//
//   bench_moe [--plugins DIR] [--d-model 512] [--expert-hidden 1536] [--top-k 2]
//             [--batch 16] [--seq 128] [--experts 4,16,64] [--dtypes float32,bfloat16]
//             [--impls loop,grouped,sparse] [--rounds 3] [--threads N] [--markdown FILE]
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <filesystem>

using namespace mixlab;

namespace {

struct Options {
  std::filesystem::path plugins;
  int64_t d_model = 512, expert_hidden = 1536, top_k = 2, batch = 16, seq = 128;
  std::vector<int64_t> experts{4, 16, 64};
  std::vector<std::string> dtypes{"float32", "bfloat16"};
  std::vector<std::string> impls{"loop", "grouped", "sparse"};
  int rounds = 3;
  int threads = 0;
  std::string markdown;
};

Options parse(int argc, char** argv) {
  Options o;
  o.plugins = mixlab::bench::default_plugin_dir();
  CLI::App app{"moe: the sparse implementations side by side as experts grow, and vs the mlp"};
  app.add_option("--plugins", o.plugins, "plugin folder");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--expert-hidden", o.expert_hidden, "hidden width of one expert");
  app.add_option("--top-k", o.top_k, "experts per token");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--seq", o.seq, "sequence length");
  app.add_option("--experts", o.experts, "expert counts")->delimiter(',');
  app.add_option("--dtypes", o.dtypes, "float32 | bfloat16 | float64")->delimiter(',');
  app.add_option("--impls", o.impls, "moe implementations; ratios are against the first")->delimiter(',');
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--threads", o.threads, "ATen threads");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  return o;
}

std::vector<torch::Tensor> trainable_params(const PluginInstance& inst, torch::ScalarType dtype) {
  auto params = inst.init_params(dtype, torch::kCPU, 1, 0.02);
  for (auto& p : params) p.requires_grad_(true);
  return params;
}

// One forward + backward of an instance on fixed inputs, as a training step runs it.
std::function<void()> train_step(std::shared_ptr<PluginInstance> inst, std::vector<torch::Tensor> params,
                                  const torch::Tensor& x) {
  auto grad_y = torch::randn_like(x);
  return [inst, params, x, grad_y]() mutable {
    auto r = inst->forward(x, params, {true, 7});
    auto loss = (r.y * grad_y).sum();
    for (const auto& a : r.aux_losses) loss = loss + a;
    loss.backward();
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  };
}

}  // namespace

int main(int argc, char** argv) try {
  Options o = parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  Registry registry;
  registry.add_folder(o.plugins);
  std::vector<ImplRef> refs;
  for (const auto& impl : o.impls) refs.push_back(registry.select({"moe", impl}));
  auto mlp_ref = registry.select({"mlp"});
  auto mlp_config = R"({"activation": "swiglu", "hidden": )" + std::to_string(o.top_k * o.expert_hidden) + "}";

  std::cout << "moe forward+backward, CPU, " << torch::get_num_threads() << " threads, B=" << o.batch
            << " T=" << o.seq << " d_model=" << o.d_model << " expert_hidden=" << o.expert_hidden
            << " top_k=" << o.top_k << " swiglu; mlp hidden=" << o.top_k * o.expert_hidden
            << " (same active expert parameters); median of " << o.rounds << " interleaved rounds\n\n";
  std::vector<std::string> header{"experts", "dtype", "padding"};
  for (const auto& impl : o.impls) header.push_back(impl + " ms");
  header.push_back("mlp ms");
  for (size_t i = 1; i < o.impls.size(); ++i) header.push_back(o.impls[0] + "/" + o.impls[i]);
  for (const auto& impl : o.impls) header.push_back(impl + "/mlp");
  bench::Table table(header);
  for (const auto& dtype_name : o.dtypes) {
    auto dtype = bench::dtype_named(dtype_name);
    auto x = torch::randn({o.batch, o.seq, o.d_model}).to(dtype).requires_grad_(true);
    auto mlp = PluginInstance::create(mlp_ref, o.d_model, o.seq, mlp_config);
    auto mlp_step = train_step(mlp, trainable_params(*mlp, dtype), x);
    for (int64_t n_experts : o.experts) {
      auto config = R"({"activation": "swiglu", "experts": )" + std::to_string(n_experts) + R"(, "top_k": )" +
                    std::to_string(o.top_k) + R"(, "expert_hidden": )" + std::to_string(o.expert_hidden) + "}";
      // One parameter layout for every moe implementation: one set of weights, so every
      // implementation routes the same tokens to the same experts.
      std::vector<std::function<void()>> steps;
      std::vector<torch::Tensor> params;
      for (const auto& ref : refs) {
        auto inst = PluginInstance::create(ref, o.d_model, o.seq, config);
        if (params.empty()) params = trainable_params(*inst, dtype);
        steps.push_back(train_step(inst, params, x));
      }
      steps.push_back(mlp_step);
      auto t = bench::interleaved_medians(steps, o.rounds);
      // E · the largest expert share: the padded batch's rows over the real rows.
      double padding = 0.0;
      {
        torch::NoGradGuard no_grad;
        auto share = PluginInstance::create(refs[0], o.d_model, o.seq, config)->forward(x, params, {true, 7}).statistics[0];
        padding = static_cast<double>(n_experts) * share.max().item<double>();
      }
      const double mlp_time = t.back();
      std::vector<std::string> row{std::to_string(n_experts), dtype_name, bench::fmt(padding)};
      for (size_t i = 0; i < refs.size(); ++i) row.push_back(bench::fmt(t[i] * 1e3));
      row.push_back(bench::fmt(mlp_time * 1e3));
      for (size_t i = 1; i < refs.size(); ++i) row.push_back(bench::fmt(t[0] / t[i]));
      for (size_t i = 0; i < refs.size(); ++i) row.push_back(bench::fmt(t[i] / mlp_time));
      table.add(row);
      for (const auto& cell : row) std::cerr << cell << "  ";  // each row as it is measured: a run is long
      std::cerr << "\n";
    }
  }
  table.print();
  if (!o.markdown.empty()) table.write_markdown(o.markdown);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_moe: " << e.what() << "\n";
  return 1;
}
