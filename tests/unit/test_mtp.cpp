// Multi-token prediction (model/mtp_head.hpp, train/mtp_loss.hpp): the objective
// L_main + lambda / D * sum_k L_k and every parameter's gradient against a naive
// float64 reference written here from DeepSeek-V3's equations (pre- and post-norm,
// fused and reference host paths, ignored targets); a run logs the per-depth losses,
// checkpoints the modules and resumes to the same weights; explain counts them apart.
// Registered in `unit`.
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/explain.hpp"
#include "model/mtp_head.hpp"
#include "model/safetensors.hpp"
#include "model_reference_check.hpp"
#include "train/checkpoint.hpp"
#include "train/lm_head_loss.hpp"
#include "train/mtp_loss.hpp"

#include <doctest/doctest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

fs::path write_experiment(const std::string& name, const std::string& norm_position) {
  const fs::path dir = mixlab::test::scratch("mtp-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "e.toml")
      << "[job]\nseed = 2\nplugin_path = [\"" << MIXLAB_TEST_PLUGIN_DIR << "\"]\n"
      << "[model]\nd_model = 16\nmax_seq_len = 16\nnorm_position = \"" << norm_position << "\"\n"
      << "mtp = { depth = 2, loss_weight = 0.5 }\n[model.templates.t]\nmixer = { plugin = \"prefix_mean\" }\n"
      << "ffn = { plugin = \"mlp\", activation = \"relu\", hidden = 24 }\n"
      << "[[model.schedule]]\ntemplate = \"t\"\nrepeat = 2\n"
      << "[data]\nsource = \"builtin:grammar\"\nseq_len = 12\n[training]\nsteps = 1\n";
  return dir / "e.toml";
}

// The model and its modules in float64 from the equations, on copies of the parameters: the test
// plugins' blocks (model_reference_check.hpp, RMSNorm) and the MTP modules.
struct Reference : mixlab::test::PrefixMeanReference {
  // Mean cross-entropy over the targets that are not -100.
  torch::Tensor loss(const torch::Tensor& features, const torch::Tensor& targets) const {
    auto logp = torch::log_softmax(torch::matmul(features, p.at("embed.weight").t()), -1);
    auto scored = targets.ne(-100);
    auto picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1);
    return -(picked * scored).sum() / scored.sum();
  }
  // (main loss, [L_1 .. L_D]).
  std::pair<torch::Tensor, std::vector<torch::Tensor>> run(const torch::Tensor& tokens, const torch::Tensor& targets,
                                                           int64_t depth) const {
    auto h = torch::embedding(p.at("embed.weight"), tokens);
    for (int l = 0; l < 2; ++l) h = layer(h, "layers." + std::to_string(l));
    auto main = loss(pre ? norm(h, "final_norm") : h, targets);
    std::vector<torch::Tensor> mtp;
    const int64_t T = tokens.size(1);
    for (int64_t k = 1; k <= depth; ++k) {
      const std::string m = "mtp." + std::to_string(k);
      auto e = torch::embedding(p.at("embed.weight"), tokens.narrow(1, k, T - k));
      auto x = torch::matmul(torch::cat({norm(h.narrow(1, 0, T - k), m + ".hnorm"), norm(e, m + ".enorm")}, -1),
                             p.at(m + ".proj.weight").t());
      h = layer(x, m);
      mtp.push_back(loss(pre ? norm(h, m + ".final_norm") : h, targets.narrow(1, k, T - k)));
    }
    return {main, mtp};
  }
};

double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  auto w = want.to(torch::kFloat64);
  return (got.to(torch::kFloat64) - w).abs().max().item<double>() / std::max(1e-6, w.abs().max().item<double>());
}

}  // namespace

TEST_CASE("mtp: objective, per-depth losses and every gradient equal a float64 reference") {
  for (const char* position : {"pre", "post"}) {
    for (bool fused : {true, false}) {
      CAPTURE(position);
      CAPTURE(fused);
      auto config = mixlab::load_experiment(write_experiment(position, position),
                                            {std::string("training.fused=") + (fused ? "true" : "false")});
      auto registry = mixlab::experiment_registry(config);
      mixlab::Model model(config, registry, 256, torch::kCPU);
      REQUIRE(model.mtp());
      REQUIRE(model.mtp()->depth() == 2);
      torch::manual_seed(7);
      auto tokens = torch::randint(0, 256, {3, 12}, torch::kInt64);
      auto targets = torch::randint(0, 256, {3, 12}, torch::kInt64);
      targets.index_put_({0, 5}, -100);  // ignored by the main loss and by module 1 (position 4) and 2 (position 3)
      targets.index_put_({2, 11}, -100);

      std::vector<torch::Tensor> stream;
      auto out = model.forward_features(tokens, true, 0, &stream);
      auto [sum, count] = mixlab::lm_head_loss(model, out.features, targets, fused);
      auto main = sum / static_cast<double>(count);
      auto mtp = mixlab::mtp_objective(model, stream.back(), tokens, targets, fused, true, 0,
                                       [](int64_t n) { return static_cast<double>(n); }, out);
      auto objective = main + out.aux_loss + mtp;
      objective.backward();

      Reference ref{{{}, false, std::string(position) == "pre", config.model.norm_eps}};
      for (const auto& p : model.parameters())
        ref.p[p.name] = p.tensor.detach().to(torch::kFloat64).clone().requires_grad_(true);
      auto [ref_main, ref_mtp] = ref.run(tokens, targets, 2);
      auto ref_objective = ref_main + 0.5 / 2.0 * (ref_mtp[0] + ref_mtp[1]);
      ref_objective.backward();

      // Float32 against float64 through ~10 matrix products of width <= 32: 1e-5 relative.
      CHECK(max_rel(main.detach(), ref_main.detach()) < 1e-5);
      CHECK(max_rel(objective.detach(), ref_objective.detach()) < 1e-5);
      for (int k = 1; k <= 2; ++k) {
        auto stat = std::find_if(out.sides.begin(), out.sides.end(),
                                 [&](const mixlab::SideOutput& s) { return s.name == "mtp." + std::to_string(k) + "/loss"; });
        REQUIRE(stat != out.sides.end());
        CHECK_FALSE(stat->is_aux_loss);
        CHECK(max_rel(stat->value, ref_mtp[k - 1].detach()) < 1e-5);
      }
      int mtp_params = 0;
      for (const auto& p : model.parameters()) {
        CAPTURE(p.name);
        REQUIRE(p.tensor.grad().defined());
        CHECK(max_rel(p.tensor.grad(), ref.p.at(p.name).grad()) < 2e-5);
        mtp_params += p.name.rfind("mtp.", 0) == 0;
      }
      // Per module: hnorm, enorm, proj, norm1, mixer.w, norm2, ffn.w_in, ffn.w_out (+ final_norm in pre-norm).
      CHECK(mtp_params == 2 * (std::string(position) == "pre" ? 9 : 8));
    }
  }
}

TEST_CASE("mtp: explain counts the modules apart; bad settings are refused with their line") {
  const auto file = write_experiment("explain", "pre");
  auto config = mixlab::load_experiment(file);
  auto registry = mixlab::experiment_registry(config);
  auto report = mixlab::explain_report(config, registry);
  mixlab::Model model(config, registry, 256, torch::kCPU);
  CHECK(report["params_total"].get<double>() == static_cast<double>(model.n_parameters()));
  int64_t in_modules = 0;
  for (const auto& p : model.parameters())
    if (p.name.rfind("mtp.", 0) == 0) in_modules += p.tensor.numel();
  CHECK(report["mtp"]["params"].get<double>() == static_cast<double>(in_modules));
  CHECK(report["mtp"]["depth"] == 2);
  CHECK(report["mtp"]["training_only"] == true);
  CHECK(config.to_json()["model"]["mtp"]["loss_weight"] == 0.5);

  auto problems = [&](const std::vector<std::string>& sets) {
    try {
      mixlab::load_experiment(file, sets);
    } catch (const mixlab::ExperimentError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(problems({"model.mtp.depth=12"}).find("model.mtp.depth: depth 12 leaves no position to predict from") !=
        std::string::npos);
  CHECK(problems({"model.mtp.depth=17"}).find("model.mtp.depth: expected an integer in 0 .. 16") != std::string::npos);
  CHECK(problems({"model.mtp.dept=1"}).find("model.mtp.dept: unknown key (did you mean \"depth\"?)") != std::string::npos);
  CHECK(problems({"model.mtp=3"}).find("model.mtp: expected a table with keys depth, loss_weight, got 3") !=
        std::string::npos);
  CHECK(problems({"model.mtp.loss_weight=-1"}).find("model.mtp.loss_weight: expected a number >= 0") != std::string::npos);
}

TEST_CASE("mtp: a run logs each depth's loss, checkpoints the modules and resumes to the same weights") {
  using mixlab::test::host;
  const std::string args = mixlab::test::tiny_experiment() + mixlab::test::cache_args() +
                           " --set model.mtp.depth=2 --set training.steps=4 --set checkpoint.every=2"
                           " --set metrics.log_every=1 --set validation.every=0 --set validation.batches=1"
                           " --set training.threads=1";
  const auto run_dir = mixlab::test::scratch("mtp-run");
  auto r = host("run " + args + " --output-dir " + run_dir.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto lines = mixlab::test::read_jsonl(run_dir / "metrics.jsonl");
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.front().contains("mtp.1/loss"));
  CHECK(lines.front().contains("mtp.2/loss"));
  CHECK(lines.front()["mtp.2/loss"].get<double>() > 0);
  auto weights = mixlab::load_safetensors(mixlab::checkpoint_dir(run_dir, 4) / "model.safetensors").tensors;
  CHECK(std::count_if(weights.begin(), weights.end(), [](const auto& t) { return t.first == "mtp.2.proj.weight"; }) == 1);

  // Resume a copy from its step-2 checkpoint: the step-4 weights, modules included, come out the same.
  const auto copy = mixlab::test::scratch("mtp-resumed");
  fs::copy(run_dir, copy, fs::copy_options::recursive);
  fs::remove_all(mixlab::checkpoint_dir(copy, 4));
  auto resumed = host("run --resume " + copy.string());
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  auto again = mixlab::load_safetensors(mixlab::checkpoint_dir(copy, 4) / "model.safetensors").tensors;
  REQUIRE(again.size() == weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    CAPTURE(weights[i].first);
    CHECK(again[i].first == weights[i].first);
    CHECK(torch::equal(weights[i].second, again[i].second));
  }
}
