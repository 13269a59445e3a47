// One training step of an experiment's model, the host's fast paths
// (training.fused = true) against their references (false), timed phase by
// phase in interleaved rounds: forward (model and loss, under bfloat16 autocast
// for --dtype bfloat16), backward, gradient clipping (the fused form computes the
// norm and leaves the scaling to its optimizer kernel), optimizer step. The two
// models start from the same weights and see the same batches; the table gives
// the median milliseconds of each phase and their ratio, and the last line the
// tokens/s of the whole step. With --dtype bfloat16 it also counts the casts of
// parameter-sized float32 tensors to bfloat16 in one step (a RecordFunction
// observer on aten::_to_copy), to see whether each weight is cast once per step
// or once per use. Synthetic tokens (uniform bytes): the data
// pipeline is not part of a step's cost here.
//   bench_host_step [--experiment bench/host_step.toml] [--dtype float32|bfloat16] [--rounds 5]
#include "bench_util.hpp"
#include "experiment/loader.hpp"
#include "model/model.hpp"
#include "runtime/registry.hpp"
#include "train/autocast_scope.hpp"
#include "train/fused_adamw.hpp"
#include "train/lm_head_loss.hpp"
#include "train/optimizer.hpp"
#include "train/row_major_matmul.hpp"

#include <ATen/record_function.h>

#include <atomic>
#include <set>

namespace {

using Clock = std::chrono::steady_clock;
const char* kPhases[] = {"forward + loss", "backward", "clip", "optimizer", "step"};

struct Trainee {
  std::unique_ptr<mixlab::Model> model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  bool fused;
};

Trainee make(const std::filesystem::path& experiment, bool fused) {
  auto config = mixlab::load_experiment(experiment, {std::string("training.fused=") + (fused ? "true" : "false")});
  config.job.plugin_path.push_back(mixlab::bench::default_plugin_dir().string());  // the bundled plugins
  auto registry = mixlab::experiment_registry(config);
  Trainee t;
  t.fused = fused;
  t.model = std::make_unique<mixlab::Model>(config, registry, 256, torch::kCPU);
  for (const auto& p : t.model->parameters()) t.params.push_back(p.tensor);
  t.optimizer = mixlab::make_adamw(config, *t.model);
  return t;
}

// Seconds of each phase of one step.
std::vector<double> step(Trainee& t, const torch::Tensor& inputs, const torch::Tensor& targets, bool bf16) {
  mixlab::RowMajorMatmulScope row_major_matmul(t.fused && bf16);  // as the trainer holds it
  std::vector<double> s;
  auto t0 = Clock::now();
  auto lap = [&] {
    auto now = Clock::now();
    s.push_back(std::chrono::duration<double>(now - t0).count());
    t0 = now;
  };
  t.optimizer->zero_grad();
  torch::Tensor loss;
  {
    mixlab::AutocastScope autocast(bf16, torch::kCPU);
    auto out = t.model->forward_features(inputs, true, 0);
    auto [sum, count] = mixlab::lm_head_loss(*t.model, out.features, targets, t.fused);
    loss = sum / static_cast<double>(count);
  }
  lap();
  loss.backward();
  lap();
  double clip = 1;  // the fused step applies it
  if (t.fused) clip = mixlab::clip_factor(mixlab::gradient_norm(t.params), 1.0);
  else torch::nn::utils::clip_grad_norm_(t.params, 1.0);
  lap();
  if (t.fused) mixlab::fused_adamw_step(*t.optimizer, clip);
  else t.optimizer->step();
  lap();
  double total = 0;
  for (double x : s) total += x;
  s.push_back(total);
  return s;
}

// Casts float32 -> bfloat16 of tensors with a parameter's element count, while it lives.
class WeightCastCounter {
 public:
  explicit WeightCastCounter(const std::vector<torch::Tensor>& params) {
    for (const auto& p : params) sizes().insert(p.numel());
    handle_ = at::addGlobalCallback(at::RecordFunctionCallback(&observe).needsInputs(true));
  }
  ~WeightCastCounter() { at::removeCallback(handle_); }
  static std::atomic<int64_t>& count() {
    static std::atomic<int64_t> n{0};
    return n;
  }

 private:
  static std::set<int64_t>& sizes() {
    static std::set<int64_t> s;
    return s;
  }
  static std::unique_ptr<at::ObserverContext> observe(const at::RecordFunction& fn) {
    if (std::string_view(fn.name()) != "aten::_to_copy") return nullptr;
    auto inputs = fn.inputs();
    if (inputs.size() < 2 || !inputs[0].isTensor() || !inputs[1].isInt()) return nullptr;
    const auto& t = inputs[0].toTensor();
    if (t.scalar_type() == torch::kFloat32 && static_cast<torch::ScalarType>(inputs[1].toInt()) == torch::kBFloat16 &&
        sizes().count(t.numel()))
      ++count();
    return nullptr;
  }
  at::CallbackHandle handle_;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  std::filesystem::path experiment = "bench/host_step.toml";
  std::string dtype = "float32";
  int rounds = 5;
  CLI::App app{"one training step: training.fused = true against false, phase by phase"};
  app.add_option("--experiment", experiment, "experiment file (its model, batch_size, seq_len and threads)");
  app.add_option("--dtype", dtype, "float32 | bfloat16 (autocast)")->check(CLI::IsMember({"float32", "bfloat16"}));
  app.add_option("--rounds", rounds, "timed rounds (after one warm-up step each)");
  mixlab::bench::parse_or_exit(app, argc, argv);

  auto config = mixlab::load_experiment(experiment, {});
  at::set_num_threads(static_cast<int>(config.training.threads > 0 ? config.training.threads : 2));
  const int64_t batch = config.training.batch_size, seq = config.data.seq_len;
  std::vector<Trainee> trainees;
  trainees.push_back(make(experiment, false));
  trainees.push_back(make(experiment, true));
  torch::manual_seed(1);
  std::vector<std::vector<std::vector<double>>> times(2);  // [trainee][round][phase]
  for (int r = -1; r < rounds; ++r) {                      // round -1: warm-up
    auto tokens = torch::randint(0, 256, {batch, seq + 1}, torch::kInt64);
    auto inputs = tokens.narrow(1, 0, seq), targets = tokens.narrow(1, 1, seq);
    for (size_t i = 0; i < trainees.size(); ++i) {
      auto s = step(trainees[i], inputs, targets, dtype == "bfloat16");
      if (r >= 0) times[i].push_back(s);
    }
  }
  std::printf("%s, %s, batch %lld x %lld tokens, %d threads, median of %d rounds\n\n", experiment.filename().c_str(),
              dtype.c_str(), static_cast<long long>(batch), static_cast<long long>(seq), at::get_num_threads(), rounds);
  std::printf("| phase | reference ms | fused ms | reference / fused |\n|---|---|---|---|\n");
  std::vector<double> ref_ms, fused_ms;
  for (size_t p = 0; p < std::size(kPhases); ++p) {
    std::vector<double> a, b;
    for (int r = 0; r < rounds; ++r) a.push_back(times[0][r][p]), b.push_back(times[1][r][p]);
    ref_ms.push_back(1e3 * median(a)), fused_ms.push_back(1e3 * median(b));
    std::printf("| %s | %.1f | %.1f | %.2f |\n", kPhases[p], ref_ms.back(), fused_ms.back(), ref_ms.back() / fused_ms.back());
  }
  if (dtype == "bfloat16") {
    auto tokens = torch::randint(0, 256, {batch, seq + 1}, torch::kInt64);
    std::vector<int64_t> casts;
    for (auto& t : trainees) {
      WeightCastCounter counter(t.params);
      WeightCastCounter::count() = 0;
      step(t, tokens.narrow(1, 0, seq), tokens.narrow(1, 1, seq), true);
      casts.push_back(WeightCastCounter::count());
    }
    int64_t matrices = 0;
    for (const auto& p : trainees[0].params) matrices += p.dim() == 2;
    std::printf("\nweight casts to bfloat16 in one step: reference %lld, fused %lld (the model has %lld weight "
                "matrices)\n", static_cast<long long>(casts[0]), static_cast<long long>(casts[1]),
                static_cast<long long>(matrices));
  }
  const double tokens = static_cast<double>(batch * seq);
  std::printf("\ntokens/s: reference %.0f, fused %.0f (%.2fx)\n", tokens / ref_ms.back() * 1e3,
              tokens / fused_ms.back() * 1e3, ref_ms.back() / fused_ms.back());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_host_step: %s\n", e.what());
  return 1;
}
