// The host's fast paths (training.fused) against their naive references, forward
// and backward: the residual add fused with the next norm (model/residual_norm),
// the chunked LM-head cross-entropy (train/lm_head_loss) and the fused AdamW with
// the clipping folded into it (train/fused_adamw), the bfloat16 weight gradients through
// row-major operands (train/row_major_matmul). Each fast form is compared with the
// reference evaluated in float64 (float32 tolerance) and, for bfloat16, with the
// same bound the bfloat16 reference itself meets. The resume suite (its own
// ctest entry) checks that a checkpoint written by the reference optimizer
// resumes on the fused one.
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/model.hpp"
#include "model/residual_norm.hpp"
#include "runtime/registry.hpp"
#include "train/autocast_scope.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"
#include "train/fused_adamw.hpp"
#include "train/lm_head_loss.hpp"
#include "train/lr_schedule.hpp"
#include "train/row_major_matmul.hpp"

#include <ATen/ops/mm_cpu_dispatch.h>
#include <doctest/doctest.h>

#include <fstream>

namespace fs = std::filesystem;

namespace {

// ||a - b|| / ||b||, in float64.
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.detach().to(torch::kFloat64), b64 = b.detach().to(torch::kFloat64);
  return ((a64 - b64).norm() / b64.norm().clamp_min(1e-300)).item<double>();
}

// Leaves of `dtype` with the values of t.
torch::Tensor leaf(const torch::Tensor& t, torch::ScalarType dtype) { return t.detach().to(dtype).requires_grad_(true); }

struct NormCase {
  torch::Tensor h, branch, weight, bias, grad_sum, grad_normed;
};

NormCase norm_case(bool layer_norm) {
  torch::manual_seed(11);
  const auto f64 = torch::kFloat64;
  const int64_t d = 48;  // 2 x 67 rows: blocks of unequal length
  return {torch::randn({2, 67, d}, f64),     torch::randn({2, 67, d}, f64) * 0.5,
          1 + 0.3 * torch::randn({d}, f64), layer_norm ? 0.2 * torch::randn({d}, f64) : torch::Tensor(),
          torch::randn({2, 67, d}, f64),     torch::randn({2, 67, d}, f64)};
}

// Outputs (sum, normed) and gradients (h, branch, weight[, bias]) of one form in `dtype`.
std::vector<torch::Tensor> run_norm(const NormCase& c, torch::ScalarType dtype, bool fused, bool with_grad_sum) {
  auto h = leaf(c.h, dtype), branch = leaf(c.branch, dtype);
  // Parameters stay float32 (float64 in the float64 reference), as the trainer's do.
  auto param_dtype = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto w = leaf(c.weight, param_dtype);
  auto b = c.bias.defined() ? leaf(c.bias, param_dtype) : torch::Tensor();
  auto out = fused ? mixlab::add_norm_fused(h, branch, w, b, 1e-5) : mixlab::add_norm_reference(h, branch, w, b, 1e-5);
  std::vector<torch::Tensor> outs{out.normed}, grads{c.grad_normed.to(out.normed.scalar_type())};
  if (with_grad_sum) outs.push_back(out.sum), grads.push_back(c.grad_sum.to(out.sum.scalar_type()));
  torch::autograd::backward(outs, grads);
  std::vector<torch::Tensor> r{out.sum, out.normed, h.grad(), branch.grad(), w.grad()};
  if (b.defined()) r.push_back(b.grad());
  return r;
}

}  // namespace

TEST_SUITE("fused") {
TEST_CASE("add + norm: the fused form equals the reference, forward and backward, rmsnorm and layernorm") {
  const char* names[] = {"sum", "normed", "grad h", "grad branch", "grad weight", "grad bias"};
  for (bool layer_norm : {false, true}) {
    for (bool with_grad_sum : {true, false}) {  // false: the last sublayer of a post-norm model
      CAPTURE(layer_norm);
      CAPTURE(with_grad_sum);
      auto c = norm_case(layer_norm);
      auto exact = run_norm(c, torch::kFloat64, false, with_grad_sum);
      // float64 through the fused kernel: the same function to rounding.
      auto fused64 = run_norm(c, torch::kFloat64, true, with_grad_sum);
      // float32: within 1e-5 of the float64 reference (relative L2).
      auto fused32 = run_norm(c, torch::kFloat32, true, with_grad_sum);
      // bfloat16: within 2e-2, and no further from it than 1.5x the bfloat16 reference + 1e-3.
      auto fused16 = run_norm(c, torch::kBFloat16, true, with_grad_sum);
      auto naive16 = run_norm(c, torch::kBFloat16, false, with_grad_sum);
      for (size_t i = 0; i < exact.size(); ++i) {
        CAPTURE(names[i]);
        CHECK((fused32[i].scalar_type() == torch::kFloat32));
        CHECK(rel(fused64[i], exact[i]) < 1e-12);
        CHECK(rel(fused32[i], exact[i]) < 1e-5);
        CHECK(rel(fused16[i], exact[i]) < 2e-2);
        CHECK(rel(fused16[i], exact[i]) <= 1.5 * rel(naive16[i], exact[i]) + 1e-3);
      }
    }
  }
}

TEST_CASE("chunked cross-entropy equals the full-logits loss: value, feature and head-weight gradients") {
  torch::manual_seed(5);
  const int64_t vocab = 50, d = 16;
  auto features = torch::randn({3, 13, d}, torch::kFloat64);
  auto weight = torch::randn({vocab, d}, torch::kFloat64) * 0.5;
  auto targets = torch::randint(0, vocab, {3, 13}, torch::kInt64);
  targets.index_put_({0, 2}, -100), targets.index_put_({2, 12}, -100);  // ignored tokens
  auto loss_and_grads = [&](torch::ScalarType dtype, int64_t chunk, bool autocast) {
    auto x = leaf(features, dtype), w = leaf(weight, dtype);
    mixlab::TokenLossSum r;
    {
      mixlab::AutocastScope scope(autocast, torch::kCPU);
      r = chunk > 0 ? mixlab::chunked_token_loss_sum(x, w, targets, chunk)
                    : mixlab::token_loss_sum(torch::linear(x, w), targets);
    }
    r.first.backward();
    CHECK(r.second == 3 * 13 - 2);
    return std::vector<torch::Tensor>{r.first, x.grad(), w.grad()};
  };
  auto exact = loss_and_grads(torch::kFloat64, 0, false);
  const char* names[] = {"loss", "grad features", "grad weight"};
  for (int64_t chunk : {1, 7, 39, 4096}) {  // one token, uneven chunks, exactly all, more than all
    CAPTURE(chunk);
    auto fp32 = loss_and_grads(torch::kFloat32, chunk, false);
    // bfloat16 autocast on float32 leaves, as in training: products in bfloat16, softmax in float32.
    auto bf16 = loss_and_grads(torch::kFloat32, chunk, true);
    auto naive_bf16 = loss_and_grads(torch::kFloat32, 0, true);
    for (size_t i = 0; i < exact.size(); ++i) {
      CAPTURE(names[i]);
      CHECK(rel(fp32[i], exact[i]) < 1e-5);
      CHECK(rel(bf16[i], exact[i]) < 3e-2);
      CHECK(rel(bf16[i], exact[i]) <= 1.5 * rel(naive_bf16[i], exact[i]) + 1e-3);
    }
    // The products really run in bfloat16 (a float32 head would be ~1e-3 away from the naive one
    // and pass the bounds above): the same logits, so the loss of the naive form to float32 rounding.
    CHECK(rel(bf16[0], naive_bf16[0]) < 1e-6);
    CHECK(rel(naive_bf16[0], exact[0]) > 1e-4);
  }
  CHECK(mixlab::loss_chunk_tokens(256) == 32768);
  CHECK(mixlab::loss_chunk_tokens(32000) == 262);
  CHECK(mixlab::loss_chunk_tokens(1 << 20) == 64);
}

TEST_CASE("fused AdamW with folded clipping: the parameters and moments of torch::optim::AdamW after 30 steps") {
  auto cfg = mixlab::ExperimentConfig{};
  cfg.optimizer.lr = 3e-2, cfg.training.steps = 30, cfg.lr_scheduler.warmup_steps = 5;
  auto make_params = [] {
    torch::manual_seed(2);
    return std::vector<torch::Tensor>{torch::randn({64, 32}).requires_grad_(true), torch::randn({32}).requires_grad_(true),
                                      torch::randn({7, 5, 3}).requires_grad_(true), torch::randn({16}).requires_grad_(true)};
  };
  auto train = [&](bool fused) {
    auto params = make_params();
    auto opts = [&](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(cfg.optimizer.lr).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{params[0], params[2]}, opts(0.1));
    groups.emplace_back(std::vector<torch::Tensor>{params[1], params[3]}, opts(0.0));
    torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(cfg.optimizer.lr));
    std::vector<double> norms;
    for (int64_t step = 0; step < cfg.training.steps; ++step) {
      for (auto& g : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(g.options()).lr(mixlab::learning_rate(step, cfg));
      optimizer.zero_grad();
      // A loss that depends on the parameters; params[3] gets no gradient for the first 6 steps
      // (its moments start later, as AdamW's do), so the step counts differ between parameters.
      auto loss = (params[0].sin() * (1 + step % 3)).sum() + params[1].pow(2).sum() * 3 + (params[2] * params[2].cos()).sum();
      if (step >= 6) loss = loss + (params[3] - 0.5).abs().sum();
      loss.backward();
      norms.push_back(fused ? mixlab::gradient_norm(params) : torch::nn::utils::clip_grad_norm_(params, 5.0));
      if (fused) mixlab::fused_adamw_step(optimizer, mixlab::clip_factor(norms.back(), 5.0));
      else optimizer.step();
    }
    std::vector<torch::Tensor> state;
    std::vector<int64_t> steps;
    for (const auto& p : params) {
      auto& s = static_cast<torch::optim::AdamWParamState&>(*optimizer.state().at(p.unsafeGetTensorImpl()));
      state.push_back(s.exp_avg()), state.push_back(s.exp_avg_sq()), steps.push_back(s.step());
    }
    return std::tuple{params, state, steps, norms};
  };
  auto [p_ref, s_ref, steps_ref, norms_ref] = train(false);
  auto [p_fused, s_fused, steps_fused, norms_fused] = train(true);
  CHECK((steps_ref == std::vector<int64_t>{30, 30, 30, 24}));
  CHECK((steps_fused == steps_ref));
  CHECK(norms_ref.front() > 5.0);  // clipping is active
  for (size_t i = 0; i < norms_ref.size(); ++i) CHECK(norms_fused[i] == doctest::Approx(norms_ref[i]).epsilon(1e-5));
  // float32, 30 steps at lr 3e-2: within 1e-5 of the parameter scale.
  for (size_t i = 0; i < p_ref.size(); ++i) {
    CAPTURE(i);
    CHECK((p_fused[i] - p_ref[i]).abs().max().item<double>() < 1e-5 * std::max(1.0, p_ref[i].abs().max().item<double>()));
  }
  for (size_t i = 0; i < s_ref.size(); ++i) CHECK(rel(s_fused[i], s_ref[i]) < 1e-5);
}

TEST_CASE("the gradient norm: float64's, and the same bits at any thread count") {
  torch::manual_seed(4);
  // Sizes around the 65,536-element chunks and the 16 lanes; a float64 gradient takes ATen's norm.
  std::vector<torch::Tensor> params;
  for (int64_t n : {1, 15, 17, 65536, 65537, 300001})
    params.push_back(torch::zeros({n}, torch::kFloat32).requires_grad_(true));
  params.push_back(torch::zeros({33, 3}, torch::kFloat64).requires_grad_(true));
  params.push_back(torch::zeros({5}).requires_grad_(true));  // no gradient: not counted
  double exact = 0;
  for (size_t i = 0; i + 1 < params.size(); ++i) {
    params[i].mutable_grad() = torch::randn(params[i].sizes(), params[i].options()) * (1.0 + static_cast<double>(i));
    exact += params[i].grad().to(torch::kFloat64).square().sum().item<double>();
  }
  exact = std::sqrt(exact);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const double one = mixlab::gradient_norm(params);
  at::set_num_threads(2);
  const double two = mixlab::gradient_norm(params);
  at::set_num_threads(threads);
  CHECK(one == two);
  CHECK(one == doctest::Approx(exact).epsilon(1e-6));
  CHECK(mixlab::clip_factor(one, 2 * one) == 1.0);
  CHECK(mixlab::clip_factor(one, one / 4) == doctest::Approx(0.25).epsilon(1e-6));
}

TEST_CASE("row-major bfloat16 products: an exact copy, float64's product, and ATen's kernel swapped only in scope") {
  torch::manual_seed(8);
  // The copy: every element in place, tiles and ragged edges, a column-major view whose columns
  // are further apart than its rows, both 16-bit types.
  for (auto dtype : {torch::kBFloat16, torch::kFloat16})
    for (auto [m, n] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {67, 133}, {1000, 37}, {3, 200}, {130, 64}}) {
      CAPTURE(m);
      CAPTURE(n);
      auto t = torch::randn({n, m + 5}, dtype).narrow(1, 2, m).t();  // (m, n), column stride m + 5
      auto copy = mixlab::row_major_copy(t);
      CHECK(copy.is_contiguous());
      CHECK(torch::equal(copy, t.contiguous()));
    }
  // The product gᵀ·x of a weight gradient: 300 tokens, 1100 outputs, 1024 inputs (wide enough to copy).
  auto g = torch::randn({300, 1100}, torch::kFloat64), x = torch::randn({300, 1024}, torch::kFloat64);
  auto a = g.to(torch::kBFloat16).t(), b = x.to(torch::kBFloat16);
  auto exact = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64));
  auto row_major = mixlab::mm_row_major_operands(a, b), aten = torch::mm(a, b);
  CHECK(torch::equal(row_major, at::cpu::mm(a.contiguous(), b)));
  // bfloat16 output of float32 sums: within bfloat16's rounding of float64's product, as ATen's is.
  CHECK(rel(row_major, exact) < 4e-3);
  CHECK(rel(aten, exact) < 4e-3);
  auto narrow = b.narrow(1, 0, 512).contiguous();  // too narrow to pay for the copy: ATen's product
  // Which kernels aten::mm has for CPU, by the file that registered them.
  auto mm_kernels = [] { return c10::Dispatcher::singleton().findSchemaOrThrow("aten::mm", "").dumpState(); };
  CHECK(mm_kernels().find("row_major_matmul.cpp") == std::string::npos);
  {
    mixlab::RowMajorMatmulScope scope(true);
    CHECK(mm_kernels().find("row_major_matmul.cpp") != std::string::npos);
    CHECK(torch::equal(torch::mm(a, b), row_major));
    auto out = torch::empty_like(row_major);  // mm.out: what a grouped matmul calls per group
    CHECK(torch::equal(torch::mm_out(out, a, b), row_major));
    CHECK(torch::equal(torch::mm(a, narrow), at::cpu::mm(a, narrow)));
    CHECK(torch::equal(torch::mm(a.to(torch::kFloat32), b.to(torch::kFloat32)),
                       at::cpu::mm(a.to(torch::kFloat32), b.to(torch::kFloat32))));
  }
  CHECK(torch::equal(torch::mm(a, b), aten));  // the scope's end restores ATen's kernel
  CHECK(mm_kernels().find("row_major_matmul.cpp") == std::string::npos);
  {
    mixlab::RowMajorMatmulScope off(false);
    CHECK(torch::equal(torch::mm(a, b), aten));
  }
  // Through autograd: a linear layer's weight gradient under bfloat16 autocast, as in training.
  auto weight = torch::randn({1100, 1024}, torch::kFloat64) * 0.03;
  auto weight_gradient = [&](bool row_major_scope) {
    auto w = leaf(weight, torch::kFloat32), input = leaf(x, torch::kFloat32);
    mixlab::RowMajorMatmulScope scope(row_major_scope);
    torch::Tensor y;
    {
      mixlab::AutocastScope autocast(true, torch::kCPU);
      y = torch::linear(input, w);
    }
    (y.to(torch::kFloat32) * g).sum().backward();
    return w.grad();
  };
  // Autocast multiplies bfloat16 roundings of the output gradient and of the input.
  auto rounded = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat64); };
  auto exact_grad = torch::mm(rounded(g).t(), rounded(x));
  auto with_scope = weight_gradient(true), without = weight_gradient(false);
  CHECK(rel(with_scope, exact_grad) < 1e-2);
  CHECK(rel(with_scope, exact_grad) <= 1.5 * rel(without, exact_grad) + 1e-3);
}

TEST_CASE("a model with training.fused equals the reference model: logits and every parameter's gradient") {
  const fs::path dir = mixlab::test::scratch("fused-model");
  fs::create_directories(dir);
  for (const char* norm : {"rmsnorm", "layernorm"}) {
    for (const char* position : {"pre", "post"}) {
      CAPTURE(norm);
      CAPTURE(position);
      auto file = dir / "m.toml";
      std::ofstream(file) << "[model]\nd_model = 24\nmax_seq_len = 16\nnorm = \"" << norm << "\"\nnorm_position = \""
                          << position << "\"\ntie_embeddings = false\n[model.templates.t]\n"
                          << "mixer = { plugin = \"attention\", n_heads = 2 }\n"
                          << "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 40 }\n"
                          << "[[model.schedule]]\ntemplate = \"t\"\nrepeat = 2\n"
                          << "[data]\nsource = \"builtin:grammar\"\nseq_len = 16\n[training]\nsteps = 1\n";
      auto tokens = torch::randint(0, 256, {3, 16}, torch::kInt64);
      auto targets = torch::randint(0, 256, {3, 16}, torch::kInt64);
      auto run = [&](bool fused) {
        auto config = mixlab::load_experiment(file, {std::string("training.fused=") + (fused ? "true" : "false")});
        auto registry = mixlab::experiment_registry(config);
        mixlab::Model model(config, registry, 256, torch::kCPU);
        auto out = model.forward_features(tokens, true, 0);
        auto [sum, count] = mixlab::lm_head_loss(model, out.features, targets, fused);
        sum.backward();
        std::vector<torch::Tensor> r{model.forward(tokens, false, 0).logits, sum};
        for (const auto& p : model.parameters()) r.push_back(p.tensor.grad());
        return r;
      };
      auto ref = run(false), fused = run(true);
      REQUIRE(ref.size() == fused.size());
      for (size_t i = 0; i < ref.size(); ++i) {
        CAPTURE(i);
        CHECK(rel(fused[i], ref[i]) < 1e-5);
      }
    }
  }
}
}  // TEST_SUITE("fused")

TEST_SUITE("resume") {
TEST_CASE("a checkpoint of the reference optimizer resumes on the fused one: same format, the same training") {
  using mixlab::test::host;
  const std::string args = mixlab::test::tiny_experiment() + mixlab::test::cache_args() +
                           " --set training.batch_size=4 --set training.threads=1 --set checkpoint.every=4"
                           " --set validation.every=0 --set validation.batches=1";
  const auto first = mixlab::test::scratch("naive-8");
  auto r = host("run " + args + " --set training.steps=8 --set training.fused=false --output-dir " + first.string());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // Continue from its step-4 checkpoint twice, on each optimizer, in copies of the run folder.
  std::map<bool, std::vector<torch::Tensor>> finals;
  for (bool fused : {false, true}) {
    auto copy = mixlab::test::scratch(fused ? "resume-fused" : "resume-naive");
    fs::copy(first, copy, fs::copy_options::recursive);
    fs::remove_all(mixlab::checkpoint_dir(copy, 8));
    auto rr = host("run --resume " + copy.string() + " --set training.fused=" + (fused ? "true" : "false"));
    INFO(rr.output);
    REQUIRE(rr.exit_code == 0);
    CHECK(rr.output.find("resumed from") != std::string::npos);
    auto weights = mixlab::load_safetensors(mixlab::checkpoint_dir(copy, 8) / "model.safetensors");
    for (const auto& [name, t] : weights.tensors) finals[fused].push_back(t);
  }
  // The reference resumed is the uninterrupted reference run, bit for bit.
  auto uninterrupted = mixlab::load_safetensors(mixlab::checkpoint_dir(first, 8) / "model.safetensors");
  for (size_t i = 0; i < uninterrupted.tensors.size(); ++i) CHECK(torch::equal(finals[false][i], uninterrupted.tensors[i].second));
  // The fused optimizer picks up the same moments: 4 more steps stay within float32 rounding of it.
  for (size_t i = 0; i < finals[false].size(); ++i) CHECK(rel(finals[true][i], finals[false][i]) < 1e-4);
}
}  // TEST_SUITE("resume")
