// Host composition (host/model/block.hpp): mixture-of-depths layers and the
// parallel residual against naive float64 references written token by token
// (each sequence's routed tokens picked, run as their own sequence through the
// plugins, and written back one by one), forward and backward; generation with
// depth gating is causal and its decode equals the forward; explain counts what
// the model allocates and the FLOPs at capacity; bad depth_gating values are
// refused with their line.
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/depth_gating.hpp"
#include "model/explain.hpp"
#include "model/model.hpp"
#include "model_reference_check.hpp"
#include "refusal_check.hpp"
#include "runtime/registry.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <numeric>

namespace fs = std::filesystem;
using mixlab::test::float64_leaves;
using mixlab::test::relative_error;

namespace {

// Random tokens and weights from a fixed generator: the same draws whichever tests ran before.
at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }
torch::Tensor random_tokens(std::vector<int64_t> shape, at::Generator& gen) {
  return torch::randint(0, 256, shape, gen, torch::kInt64);
}

// An attention + SwiGLU experiment of `layers` layers: `model_keys` are extra [model] lines, and
// layer i is gated (capacity 0.5) when gated[i].
fs::path write_experiment(const std::string& name, const std::string& model_keys, const std::vector<bool>& gated,
                          double capacity = 0.5) {
  const fs::path dir = mixlab::test::scratch(name);
  fs::create_directories(dir);
  std::ofstream out(dir / "m.toml");
  out << "[model]\nd_model = 16\nmax_seq_len = 16\ntie_embeddings = false\ninit_std = 0.3\n" << model_keys
      << "[model.templates.t]\nmixer = { plugin = \"attention\", n_heads = 2 }\n"
      << "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 24 }\n";
  for (bool g : gated) {
    out << "[[model.schedule]]\ntemplate = \"t\"\n";
    if (g) out << "depth_gating = { capacity = " << capacity << ", aux_loss = 0.3 }\n";
  }
  out << "[data]\nsource = \"builtin:grammar\"\nseq_len = 16\n[training]\nsteps = 1\n";
  return dir / "m.toml";
}

// The naive model in float64: RMSNorm written out, every sequence on its own, and a gated
// layer's routed tokens picked from the router scores one by one.
struct Reference {
  const mixlab::Model& model;
  std::map<std::string, torch::Tensor>& P;
  bool training;
  double capacity = 0.5;
  bool parallel = false;
  bool post_norm = false;
  double min_margin = 1e300;  // the smallest gap of a routing decision (top-k boundary or 0)
  torch::Tensor aux = torch::zeros({}, torch::kFloat64);

  torch::Tensor norm(const torch::Tensor& x, const std::string& prefix) const {
    return x * (x.pow(2).mean(-1, true) + 1e-5).rsqrt() * P.at(prefix + ".weight");
  }
  torch::Tensor plugin(size_t layer, const std::string& slot, const torch::Tensor& x) const {
    const auto& inst = slot == "mixer" ? model.layers()[layer].mixer : model.layers()[layer].ffn;
    std::vector<torch::Tensor> params;
    for (const auto& p : inst->params()) params.push_back(P.at("layers." + std::to_string(layer) + "." + slot + "." + p.name));
    return inst->forward(x, params, mixlab::CallOptions{training, 0}).y;
  }
  // One layer on one sequence h (1, T, d): sequential or parallel, pre- or post-norm.
  torch::Tensor layer(size_t i, const torch::Tensor& h) const {
    const std::string n = "layers." + std::to_string(i);
    if (parallel) {
      auto x = post_norm ? h : norm(h, n + ".norm1");
      auto s = h + plugin(i, "mixer", x) + plugin(i, "ffn", x);
      return post_norm ? norm(s, n + ".norm1") : s;
    }
    if (post_norm) {
      auto h1 = norm(h + plugin(i, "mixer", h), n + ".norm1");
      return norm(h1 + plugin(i, "ffn", h1), n + ".norm2");
    }
    auto h1 = h + plugin(i, "mixer", norm(h, n + ".norm1"));
    return h1 + plugin(i, "ffn", norm(h1, n + ".norm2"));
  }
  // A gated layer on one sequence (T, d): the routed tokens' sub-sequence, each written back.
  torch::Tensor gated_layer(size_t i, const torch::Tensor& h, int64_t n_tokens) {
    const std::string n = "layers." + std::to_string(i);
    const int64_t T = h.size(0);
    std::vector<torch::Tensor> r(T);
    std::vector<double> score(T);
    for (int64_t t = 0; t < T; ++t) {
      r[t] = (norm(h[t], n + ".norm1") * P.at(n + ".router.weight")[0]).sum() + P.at(n + ".router.bias")[0];
      score[t] = r[t].item<double>();
    }
    std::vector<int64_t> order(T);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
    const int64_t k = mixlab::routed_tokens(capacity, T);
    std::vector<bool> top(T, false);
    for (int64_t j = 0; j < k; ++j) top[order[j]] = true;
    if (k < T) min_margin = std::min(min_margin, score[order[k - 1]] - score[order[k]]);
    std::vector<int64_t> routed;
    for (int64_t t = 0; t < T; ++t) {
      if (training ? top[t] : score[t] > 0) routed.push_back(t);
      if (!training) min_margin = std::min(min_margin, std::abs(score[t]));
      auto p = torch::sigmoid(r[t]);  // BCE against top-k membership, mean over the batch's tokens
      aux = aux - (top[t] ? torch::log(p) : torch::log(1 - p)) / static_cast<double>(T * n_tokens);
    }
    std::vector<torch::Tensor> out;
    for (int64_t t = 0; t < T; ++t) out.push_back(h[t]);
    if (routed.empty()) return torch::stack(out);
    std::vector<torch::Tensor> picked;
    for (auto t : routed) picked.push_back(h[t]);
    auto sub = torch::stack(picked).unsqueeze(0);
    auto updated = layer(i, sub)[0];
    for (size_t j = 0; j < routed.size(); ++j) {
      const int64_t t = routed[j];
      out[t] = h[t] + torch::sigmoid(r[t]) * (updated[j] - h[t]);
    }
    return torch::stack(out);
  }
  // Logits (B, T, vocab) for `tokens`; gated[i]: layer i has depth gating.
  torch::Tensor logits(const torch::Tensor& tokens, const std::vector<bool>& gated) {
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < tokens.size(0); ++b) {
      auto h = torch::embedding(P.at("embed.weight"), tokens[b]);
      for (size_t i = 0; i < gated.size(); ++i)
        h = gated[i] ? gated_layer(i, h, tokens.size(0)) : layer(i, h.unsqueeze(0))[0];
      rows.push_back(torch::linear(post_norm ? h : norm(h, "final_norm"), P.at("lm_head.weight")));
    }
    return torch::stack(rows);
  }
};

}  // namespace

TEST_SUITE("composition") {
TEST_CASE("depth gating equals a token-by-token float64 reference: logits, aux loss and every gradient") {
  const std::vector<bool> gated{true, false, true};
  auto file = write_experiment("mod-reference", "", gated);
  auto gen = generator(11);
  auto tokens = random_tokens({3, 16}, gen);
  for (bool training : {true, false}) {
    for (bool fused : {true, false}) {
      CAPTURE(training);
      CAPTURE(fused);
      auto config = mixlab::load_experiment(file, {std::string("training.fused=") + (fused ? "true" : "false")});
      auto registry = mixlab::experiment_registry(config);
      mixlab::Model model(config, registry, 256, torch::kCPU);
      auto out = model.forward(tokens, training, 0);
      auto weights = torch::randn(out.logits.sizes(), gen, torch::kFloat64);
      auto P = float64_leaves(model);
      Reference ref{model, P, training};
      auto want = ref.logits(tokens, gated);
      REQUIRE(ref.min_margin > 1e-4);  // no routing decision within float32 rounding of its boundary
      CHECK(relative_error(out.logits, want) < 1e-5);
      CHECK(relative_error(out.aux_loss, 0.3 * ref.aux) < 1e-5);
      // Statistics: the share routed (training: exactly k of T) and whether top-k and threshold agree.
      std::map<std::string, double> side;
      for (const auto& s : out.sides) side[s.name] = s.value.item<double>();
      if (training) CHECK(side.at("layers.0.depth_gating/routed_share") == doctest::Approx(0.5));
      CHECK(side.at("layers.2.depth_gating/router_accuracy") >= 0.0);
      CHECK(side.count("layers.1.depth_gating/routed_share") == 0);
      if (!training) continue;
      ((out.logits.to(torch::kFloat64) * weights).sum() + out.aux_loss).backward();
      ((want * weights).sum() + 0.3 * ref.aux).backward();
      mixlab::test::check_gradients(model, P);
    }
  }
}

TEST_CASE("depth gating: inference routing is causal, training's top-k is not, and decode equals the forward") {
  auto file = write_experiment("mod-causal", "", {true, true});
  auto config = mixlab::load_experiment(file);
  auto registry = mixlab::experiment_registry(config);
  mixlab::Model model(config, registry, 256, torch::kCPU);
  torch::NoGradGuard no_grad;
  auto gen = generator(12);
  auto tokens = random_tokens({2, 16}, gen);
  const int64_t keep = 8;  // positions 0..7 stay, 8..15 change
  auto out = model.forward(tokens, false, 0);
  std::map<std::string, double> side;
  for (const auto& s : out.sides) side[s.name] = s.value.item<double>();
  // Some tokens pass and some ride the residual, so the check below is not vacuous.
  CHECK(side.at("layers.0.depth_gating/routed_share") > 0.05);
  CHECK(side.at("layers.0.depth_gating/routed_share") < 0.95);
  bool training_changed = false;
  for (int trial = 0; trial < 8; ++trial) {
    auto changed = tokens.clone();
    changed.narrow(1, keep, 16 - keep).copy_(random_tokens({2, 16 - keep}, gen));
    auto later = model.forward(changed, false, 0).logits;
    CHECK((later.narrow(1, 0, keep) - out.logits.narrow(1, 0, keep)).abs().max().item<double>() < 1e-5);
    CHECK((later.narrow(1, keep, 16 - keep) - out.logits.narrow(1, keep, 16 - keep)).abs().max().item<double>() > 1e-3);
    // Top-k in training looks ahead: later tokens change which earlier ones pass.
    auto a = model.forward(tokens, true, 0).logits, b = model.forward(changed, true, 0).logits;
    training_changed = training_changed || (a.narrow(1, 0, keep) - b.narrow(1, 0, keep)).abs().max().item<double>() > 1e-4;
  }
  CHECK(training_changed);
  // Decode: one sequence, a prompt then token by token, against the inference forward.
  CHECK(model.can_decode(1));
  CHECK_FALSE(model.can_decode(2));
  try {
    model.start_decode(2);
    FAIL("a batch of 2 was accepted");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("one sequence at a time") != std::string::npos);
  }
  auto row = tokens.narrow(0, 0, 1);
  auto session = model.start_decode(1);
  std::vector<torch::Tensor> steps{session.step(row.narrow(1, 0, 5))};
  for (int64_t t = 5; t < 16; ++t) steps.push_back(session.step(row.narrow(1, t, 1)));
  CHECK(relative_error(torch::cat(steps, 1), model.forward(row, false, 0).logits) < 1e-5);
}

TEST_CASE("residual = parallel equals h + mixer(norm(h)) + ffn(norm(h)) in float64; decode equals the forward") {
  for (const char* position : {"pre", "post"}) {
    CAPTURE(position);
    auto file = write_experiment(std::string("parallel-") + position,
                                 "residual = \"parallel\"\nnorm_position = \"" + std::string(position) + "\"\n",
                                 {false, false});
    auto gen = generator(13);
    auto tokens = random_tokens({2, 16}, gen);
    for (bool fused : {true, false}) {
      CAPTURE(fused);
      auto config = mixlab::load_experiment(file, {std::string("training.fused=") + (fused ? "true" : "false")});
      auto registry = mixlab::experiment_registry(config);
      mixlab::Model model(config, registry, 256, torch::kCPU);
      // One shared norm per layer: no norm2.
      for (const auto& p : model.parameters()) CHECK(p.name.find("norm2") == std::string::npos);
      auto out = model.forward(tokens, true, 0);
      auto P = float64_leaves(model);
      Reference ref{model, P, true};
      ref.parallel = true;
      ref.post_norm = std::string(position) == "post";
      auto want = ref.logits(tokens, {false, false});
      CHECK(relative_error(out.logits, want) < 1e-5);
      auto weights = torch::randn(out.logits.sizes(), gen, torch::kFloat64);
      (out.logits.to(torch::kFloat64) * weights).sum().backward();
      (want * weights).sum().backward();
      mixlab::test::check_gradients(model, P);
      torch::NoGradGuard no_grad;
      auto session = model.start_decode(2);
      std::vector<torch::Tensor> steps{session.step(tokens.narrow(1, 0, 4))};
      for (int64_t t = 4; t < 16; ++t) steps.push_back(session.step(tokens.narrow(1, t, 1)));
      CHECK(relative_error(torch::cat(steps, 1), model.forward(tokens, false, 0).logits) < 1e-5);
    }
  }
}

TEST_CASE("explain counts the parameters the model allocates and a gated layer's FLOPs at capacity") {
  for (const char* keys : {"", "residual = \"parallel\"\n", "norm = \"layernorm\"\n"}) {
    CAPTURE(keys);
    auto file = write_experiment("mod-explain", keys, {true, false, true}, 0.25);
    auto config = mixlab::load_experiment(file);
    auto registry = mixlab::experiment_registry(config);
    auto report = mixlab::explain_report(config, registry);
    mixlab::Model model(config, registry, 256, torch::kCPU);
    CHECK(report["params_total"].get<double>() == static_cast<double>(model.n_parameters()));
    CHECK(report["layers"][0]["depth_gating_capacity"].get<double>() == 0.25);
    CHECK_FALSE(report["layers"][1].contains("depth_gating_capacity"));
    // FLOPs: the gated layers' plugins at a quarter of the tokens (a sequence of 4), plus the router.
    auto ungated = mixlab::load_experiment(file, {"model.schedule.0.depth_gating.capacity=1.0"});
    const auto& l = model.layers()[0];
    const double plain = l.mixer->cost(16, 4).forward_flops + l.ffn->cost(16, 4).forward_flops;
    const double gated = 0.25 * (l.mixer->cost(4, 4).forward_flops + l.ffn->cost(4, 4).forward_flops) + 2.0 * 16;
    const double head = 2.0 * 16 * 256;
    CHECK(report["train_flops_per_token"].get<double>() == doctest::Approx(3.0 * (2 * gated + plain + head)));
    CHECK(mixlab::explain_report(ungated, registry)["train_flops_per_token"].get<double>() >
          report["train_flops_per_token"].get<double>());
  }
}

TEST_CASE("depth_gating: a capacity outside (0, 1], another router, a post-norm model are refused with their line") {
  const std::string head = "[model]\nd_model = 16\nmax_seq_len = 16\n";
  const std::string tpl = "[model.templates.t]\nmixer = { plugin = \"attention\", n_heads = 2 }\nffn = { plugin = \"mlp\" }\n";
  const std::string tail = "[data]\nsource = \"builtin:grammar\"\nseq_len = 16\n[training]\nsteps = 1\n";
  const std::vector<mixlab::test::RefusalCase> cases{
      {head + tpl + "depth_gating = { capacity = 0 }\n[[model.schedule]]\ntemplate = \"t\"\n" + tail,
       "model.templates.t.depth_gating.capacity", "expected a number in (0, 1]", 7},
      {head + tpl + "[[model.schedule]]\ntemplate = \"t\"\ndepth_gating = { capacity = 1.5 }\n" + tail,
       "model.schedule.depth_gating.capacity", "got 1.5", 9},
      {head + tpl + "depth_gating = { capacity = 0.5, router = \"mlp\" }\n[[model.schedule]]\ntemplate = \"t\"\n" + tail,
       "model.templates.t.depth_gating.router", "expected \"linear\"", 7},
      {head + tpl + "depth_gating = { capacty = 0.5 }\n[[model.schedule]]\ntemplate = \"t\"\n" + tail,
       "model.templates.t.depth_gating.capacty", "did you mean \"capacity\"", 7},
      {head + "norm_position = \"post\"\n" + tpl + "depth_gating = { capacity = 0.5 }\n[[model.schedule]]\ntemplate = \"t\"\n" + tail,
       "model.templates.t.depth_gating", "norm_position = \"pre\"", 8},
  };
  mixlab::test::check_refusals(cases);


  // End to end: `host validate` names the file, the line and the field, and fails without a signal.
  const fs::path dir = mixlab::test::scratch("mod-bad");
  fs::create_directories(dir);
  std::ofstream(dir / "bad.toml") << cases[0].text;
  auto r = mixlab::test::host("validate " + (dir / "bad.toml").string());
  CHECK(r.exit_code > 0);
  CHECK(r.exit_code < 128);
  CHECK(r.output.find("bad.toml:7:") != std::string::npos);
  CHECK(r.output.find("depth_gating.capacity: expected a number in (0, 1]") != std::string::npos);
}
}  // TEST_SUITE("composition")
