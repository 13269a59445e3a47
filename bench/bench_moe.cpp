// moe: sparse dispatch vs the dense reference as the number of experts grows
// (top_k and the expert width fixed), and vs an `mlp` with the same active
// parameters (hidden = top_k · expert_hidden). Forward + backward, through the
// plugin ABI as a training run calls it.
//
//   bench_moe [--plugins DIR] [--d-model 128] [--expert-hidden 256] [--top-k 2]
//             [--batch 4] [--seq 128] [--experts 4,8,16,32,64] [--rounds 5]
//             [--threads N] [--markdown FILE]
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <filesystem>

using namespace mixlab;

namespace {

struct Options {
  std::filesystem::path plugins;
  int64_t d_model = 128, expert_hidden = 256, top_k = 2, batch = 4, seq = 128;
  std::vector<int64_t> experts{4, 8, 16, 32, 64};
  int rounds = 5;
  int threads = 0;
  std::string markdown;
};


Options parse(int argc, char** argv) {
  Options o;
  o.plugins = mixlab::bench::default_plugin_dir();
  CLI::App app{"moe: sparse vs dense as experts grow, and vs the mlp"};
  app.add_option("--plugins", o.plugins, "plugin folder");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--expert-hidden", o.expert_hidden, "hidden width of one expert");
  app.add_option("--top-k", o.top_k, "experts per token");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--seq", o.seq, "sequence length");
  app.add_option("--experts", o.experts, "expert counts")->delimiter(',');
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--threads", o.threads, "ATen threads");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  return o;
}

// One forward + backward of an instance on fixed inputs, as a training step runs it.
std::function<void()> train_step(std::shared_ptr<PluginInstance> inst, const torch::Tensor& x) {
  auto params = inst->init_params(torch::kFloat32, torch::kCPU, 1, 0.02);
  for (auto& p : params) p.requires_grad_(true);
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
  auto dense_ref = registry.select({"moe", "dense"});
  auto sparse_ref = registry.select({"moe", "sparse"});
  auto mlp_ref = registry.select({"mlp"});
  const int64_t max_seq = o.seq;
  auto x = torch::randn({o.batch, o.seq, o.d_model}).requires_grad_(true);
  auto mlp_config = R"({"activation": "swiglu", "hidden": )" + std::to_string(o.top_k * o.expert_hidden) + "}";
  auto mlp_step = train_step(PluginInstance::create(mlp_ref, o.d_model, max_seq, mlp_config), x);

  std::cout << "moe forward+backward, float32 CPU, " << torch::get_num_threads() << " threads, B=" << o.batch
            << " T=" << o.seq << " d_model=" << o.d_model << " expert_hidden=" << o.expert_hidden
            << " top_k=" << o.top_k << " swiglu; mlp hidden=" << o.top_k * o.expert_hidden
            << " (same active expert parameters); median of " << o.rounds << " interleaved rounds\n\n";
  bench::Table table({"experts", "sparse ms", "dense ms", "mlp ms", "dense/sparse", "sparse/mlp", "sparse peak MiB",
                      "dense peak MiB"});
  for (int64_t n_experts : o.experts) {
    auto config = R"({"activation": "swiglu", "experts": )" + std::to_string(n_experts) +
                  R"(, "top_k": )" + std::to_string(o.top_k) + R"(, "expert_hidden": )" +
                  std::to_string(o.expert_hidden) + "}";
    auto sparse_step = train_step(PluginInstance::create(sparse_ref, o.d_model, max_seq, config), x);
    auto dense_step = train_step(PluginInstance::create(dense_ref, o.d_model, max_seq, config), x);
    auto t = bench::interleaved_medians({sparse_step, dense_step, mlp_step}, o.rounds);
    double sparse_mib = bench::peak_extra_mib(sparse_step), dense_mib = bench::peak_extra_mib(dense_step);
    table.add({std::to_string(n_experts), bench::fmt(t[0] * 1e3), bench::fmt(t[1] * 1e3), bench::fmt(t[2] * 1e3),
               bench::fmt(t[1] / t[0]), bench::fmt(t[0] / t[2]), bench::fmt(sparse_mib), bench::fmt(dense_mib)});
  }
  table.print();
  if (!o.markdown.empty()) table.write_markdown(o.markdown);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_moe: " << e.what() << "\n";
  return 1;
}
