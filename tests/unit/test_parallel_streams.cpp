// Parallel streams (host/model/parallel_streams.hpp): every merge (concat with a
// narrower stream, add, gated, cross_attn with three streams) against a naive
// float64 reference that writes each merge out stream by stream and token by token,
// forward and backward (relative error: logits 1e-5, every parameter's gradient 1e-4, the model in
// float32); decode equals the forward (1e-5); explain counts what the model
// allocates and the merge's FLOPs; bad streams are refused with their line; the
// small experiment trains and generates through decode steps.
#include "decode_run_check.hpp"
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/explain.hpp"
#include "model/model.hpp"
#include "model/parallel_streams.hpp"
#include "model_reference_check.hpp"
#include "refusal_check.hpp"
#include "runtime/registry.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace fs = std::filesystem;
using mixlab::test::relative_error;

namespace {

struct MergeCase {
  std::string merge;
  std::string streams;  // the TOML list
  std::string extra;    // more template keys
};

const std::string kAttention = "{ mixer = { plugin = \"attention\", n_heads = 2 } }";
const std::string kMamba = "{ mixer = { plugin = \"mamba\", headdim = 8, d_state = 4, chunk_size = 8 }";
const std::string kWindowed = "{ mixer = { plugin = \"attention\", n_heads = 4, window = 3 } }";

std::vector<MergeCase> merge_cases() {
  return {{"concat", "[" + kAttention + ", " + kMamba + ", width = 8 }]", ""},
          {"add", "[" + kAttention + ", " + kMamba + " }]", ""},
          {"gated", "[" + kAttention + ", " + kMamba + " }, " + kWindowed + "]", ""},
          {"cross_attn", "[" + kAttention + ", " + kMamba + " }, " + kWindowed + "]", "merge_heads = 2\n"}};
}

// Two layers: layer 0 the streams with a SwiGLU, layer 1 attention + SwiGLU.
fs::path write_experiment(const std::string& name, const MergeCase& c, const std::string& model_keys = "") {
  const fs::path dir = mixlab::test::scratch(name);
  fs::create_directories(dir);
  std::ofstream out(dir / "m.toml");
  out << "[model]\nd_model = 16\nmax_seq_len = 16\ntie_embeddings = false\ninit_std = 0.3\n" << model_keys
      << "[model.templates.streams]\nstreams = " << c.streams << "\nmerge = \"" << c.merge << "\"\n" << c.extra
      << "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 24 }\n"
      << "[model.templates.t]\nmixer = { plugin = \"attention\", n_heads = 2 }\n"
      << "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 24 }\n"
      << "[[model.schedule]]\ntemplate = \"streams\"\n[[model.schedule]]\ntemplate = \"t\"\n"
      << "[data]\nsource = \"builtin:grammar\"\nseq_len = 16\n[training]\nsteps = 1\n";
  return dir / "m.toml";
}

// The naive model in float64: RMSNorm written out, each merge stream by stream and token by token.
struct Reference {
  const mixlab::Model& model;
  mixlab::ParallelStreams spec;
  std::map<std::string, torch::Tensor>& P;

  torch::Tensor norm(const torch::Tensor& x, const std::string& prefix) const {
    return x * (x.pow(2).mean(-1, true) + 1e-5).rsqrt() * P.at(prefix + ".weight");
  }
  torch::Tensor plugin(const std::shared_ptr<mixlab::PluginInstance>& inst, const std::string& prefix,
                       const torch::Tensor& x) const {
    std::vector<torch::Tensor> params;
    for (const auto& p : inst->params()) params.push_back(P.at(prefix + "." + p.name));
    return inst->forward(x, params, mixlab::CallOptions{true, 0}).y;
  }
  // The streams' merged branch on x (1, T, d).
  torch::Tensor streams(const torch::Tensor& x) const {
    const auto& slots = model.layers()[0];
    const int64_t d = 16, T = x.size(1), n = static_cast<int64_t>(slots.streams.size());
    std::vector<torch::Tensor> ys;
    for (int64_t k = 0; k < n; ++k) {
      const std::string s = "layers.0.streams." + std::to_string(k);
      auto in = spec.streams[k].width ? torch::matmul(x, P.at(s + ".in_proj.weight").t()) : x;
      ys.push_back(plugin(slots.streams[k], s + ".mixer", in));
    }
    if (spec.merge == "add") return ys[0] + ys[1];
    if (spec.merge == "concat") {  // the projection's column blocks, one per stream
      auto y = torch::zeros({1, T, d}, torch::kFloat64);
      int64_t at = 0;
      for (const auto& yk : ys) {
        y = y + torch::matmul(yk, P.at("layers.0.merge.proj.weight").narrow(1, at, yk.size(-1)).t());
        at += yk.size(-1);
      }
      return y;
    }
    if (spec.merge == "gated") {
      auto y = torch::zeros({1, T, d}, torch::kFloat64);
      for (int64_t k = 0; k < n; ++k) {
        auto w = P.at("layers.0.merge.gate.weight").narrow(0, k * d, d), b = P.at("layers.0.merge.gate.bias").narrow(0, k * d, d);
        y = y + ys[k] / (1 + torch::exp(-(torch::matmul(x, w.t()) + b)));
      }
      return y;
    }
    // cross_attn: stream 0 queries, streams 1.. keys and values, one softmax over every visible key.
    const int64_t H = spec.merge_heads, D = d / H;
    auto proj = [&](const torch::Tensor& y, const char* p) { return torch::matmul(y[0], P.at(std::string("layers.0.merge.") + p + ".weight").t()); };
    auto q = proj(ys[0], "q");
    std::vector<torch::Tensor> K, V;
    for (int64_t j = 1; j < n; ++j) K.push_back(proj(ys[j], "k")), V.push_back(proj(ys[j], "v"));
    std::vector<torch::Tensor> rows;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<torch::Tensor> heads;
      for (int64_t h = 0; h < H; ++h) {
        auto qh = q[t].narrow(0, h * D, D);
        std::vector<torch::Tensor> scores, values;
        for (size_t j = 0; j < K.size(); ++j)
          for (int64_t s = 0; s <= t; ++s) {
            scores.push_back((qh * K[j][s].narrow(0, h * D, D)).sum() / std::sqrt(static_cast<double>(D)));
            values.push_back(V[j][s].narrow(0, h * D, D));
          }
        auto e = torch::exp(torch::stack(scores) - torch::stack(scores).max());
        heads.push_back((e.unsqueeze(1) * torch::stack(values)).sum(0) / e.sum());
      }
      rows.push_back(torch::cat(heads));
    }
    return ys[0] + torch::matmul(torch::stack(rows), P.at("layers.0.merge.o.weight").t()).unsqueeze(0);
  }
  torch::Tensor logits(const torch::Tensor& tokens) const {
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < tokens.size(0); ++b) {
      auto h = torch::embedding(P.at("embed.weight"), tokens[b]).unsqueeze(0);
      h = h + streams(norm(h, "layers.0.norm1"));
      h = h + plugin(model.layers()[0].ffn, "layers.0.ffn", norm(h, "layers.0.norm2"));
      h = h + plugin(model.layers()[1].mixer, "layers.1.mixer", norm(h, "layers.1.norm1"));
      h = h + plugin(model.layers()[1].ffn, "layers.1.ffn", norm(h, "layers.1.norm2"));
      rows.push_back(torch::matmul(norm(h[0], "final_norm"), P.at("lm_head.weight").t()));
    }
    return torch::stack(rows);
  }
};

}  // namespace

TEST_SUITE("parallel_streams") {
TEST_CASE("every merge equals a naive float64 reference: logits and every gradient; decode equals the forward") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  auto tokens = torch::randint(0, 256, {2, 16}, gen, torch::kInt64);
  for (const auto& c : merge_cases()) {
    CAPTURE(c.merge);
    auto config = mixlab::load_experiment(write_experiment("streams-" + c.merge, c));
    auto registry = mixlab::experiment_registry(config);
    mixlab::Model model(config, registry, 256, torch::kCPU);
    auto out = model.forward(tokens, true, 0);
    auto P = mixlab::test::float64_leaves(model);
    Reference ref{model, *config.layers()[0].streams, P};
    auto want = ref.logits(tokens);
    CHECK(relative_error(out.logits, want) < 1e-5);
    auto weights = torch::randn(out.logits.sizes(), gen, torch::kFloat64);
    (out.logits.to(torch::kFloat64) * weights).sum().backward();
    (want * weights).sum().backward();
    mixlab::test::check_gradients(model, P);
    // Readable names: the streams' plugins and the merge's own.
    CHECK(P.count("layers.0.streams.0.mixer.wq") == 1);
    CHECK(P.count("layers.0.streams.1.mixer.in_proj.weight") == 1);
    if (c.merge == "concat") CHECK(P.count("layers.0.streams.1.in_proj.weight") == 1);
    if (c.merge == "gated") CHECK(P.count("layers.0.merge.gate.bias") == 1);
    if (c.merge == "cross_attn") CHECK(P.count("layers.0.merge.o.weight") == 1);
    // Decode: a prompt of 5 tokens, then one by one.
    torch::NoGradGuard no_grad;
    REQUIRE(model.can_decode(2));
    auto session = model.start_decode(2);
    std::vector<torch::Tensor> steps{session.step(tokens.narrow(1, 0, 5))};
    for (int64_t t = 5; t < 16; ++t) steps.push_back(session.step(tokens.narrow(1, t, 1)));
    CHECK(relative_error(torch::cat(steps, 1), model.forward(tokens, false, 0).logits) < 1e-5);
  }
}

TEST_CASE("streams in a parallel-residual and a depth-gated layer: decode still equals the forward") {
  const auto c = merge_cases()[3];  // cross_attn: the merge with its own decode cache
  for (const std::string keys : {"residual = \"parallel\"\n", ""}) {
    CAPTURE(keys);
    auto file = write_experiment("streams-compose", c, keys);
    std::vector<std::string> sets;
    if (keys.empty()) sets.push_back("model.schedule.0.depth_gating={ capacity = 0.5 }");
    auto config = mixlab::load_experiment(file, sets);
    auto registry = mixlab::experiment_registry(config);
    mixlab::Model model(config, registry, 256, torch::kCPU);
    torch::NoGradGuard no_grad;
    auto tokens = torch::randint(0, 256, {1, 16}, at::make_generator<at::CPUGeneratorImpl>(22), torch::kInt64);
    auto session = model.start_decode(1);
    std::vector<torch::Tensor> steps{session.step(tokens.narrow(1, 0, 3))};
    for (int64_t t = 3; t < 16; ++t) steps.push_back(session.step(tokens.narrow(1, t, 1)));
    CHECK(relative_error(torch::cat(steps, 1), model.forward(tokens, false, 0).logits) < 1e-5);
  }
}

TEST_CASE("explain counts the streams' parameters and FLOPs as the model allocates them") {
  for (const auto& c : merge_cases()) {
    CAPTURE(c.merge);
    auto config = mixlab::load_experiment(write_experiment("streams-explain-" + c.merge, c));
    auto registry = mixlab::experiment_registry(config);
    auto report = mixlab::explain_report(config, registry);
    mixlab::Model model(config, registry, 256, torch::kCPU);
    CHECK(report["params_total"].get<double>() == static_cast<double>(model.n_parameters()));
    const auto& l0 = model.layers()[0];
    const auto& l1 = model.layers()[1];
    const auto spec = *config.layers()[0].streams;
    const int64_t n = static_cast<int64_t>(spec.streams.size());
    // The merge by hand: concat's in_proj (8 x 16) and projection (16 x 24); gated's n gates of 16 x 16;
    // cross_attn's 4 projections, plus its scores and values over (n - 1) (T + 1) / 2 keys.
    double merge = 0;
    if (c.merge == "concat") merge = 2.0 * 16 * 8 + 2.0 * 16 * 24;
    if (c.merge == "gated") merge = 2.0 * n * 16 * 16;
    if (c.merge == "cross_attn") merge = 2.0 * 16 * 16 * (2 + 2 * (n - 1)) + 2.0 * 16 * (n - 1) * 17;
    double plugins = l0.ffn->cost(16, 4).forward_flops + l1.mixer->cost(16, 4).forward_flops + l1.ffn->cost(16, 4).forward_flops;
    for (const auto& s : l0.streams) plugins += s->cost(16, 4).forward_flops;
    CHECK(report["train_flops_per_token"].get<double>() == doctest::Approx(3.0 * (plugins + merge + 2.0 * 16 * 256)));
    const std::string mixer = report["layers"][0]["mixer"];
    CHECK(mixer.find("attention") == 0);
    CHECK(mixer.find(" + mamba") != std::string::npos);
    CHECK(mixer.find("[" + c.merge + "]") != std::string::npos);
    CHECK(report["layers"][0]["state_grows"].get<bool>());
  }
}

TEST_CASE("bad streams are refused with their line: a merge not in the list, widths, counts, mixer and streams") {
  const std::string head = "[model]\nd_model = 16\nmax_seq_len = 16\n[model.templates.t]\n";
  const std::string ffn = "ffn = { plugin = \"mlp\" }\n";
  const std::string tail = "[[model.schedule]]\ntemplate = \"t\"\n[data]\nsource = \"builtin:grammar\"\nseq_len = 16\n"
                           "[training]\nsteps = 1\n";
  const std::string two = "streams = [" + kAttention + ", " + kAttention + "]\n";
  const std::vector<mixlab::test::RefusalCase> cases{
      {head + two + "merge = \"concatenate\"\n" + ffn + tail, "model.templates.t.merge",
       "expected \"concat\", \"add\", \"gated\" or \"cross_attn\", got \"concatenate\"", 6},
      {head + two + "merge = \"gatd\"\n" + ffn + tail, "model.templates.t.merge", "did you mean \"gated\"", 6},
      {head + "streams = [" + kAttention + ",\n  { mixer = { plugin = \"attention\" }, width = 8 }]\nmerge = \"add\"\n" + ffn + tail,
       "model.templates.t.streams.1.width", "every stream needs width d_model (16), stream 1 has 8", 6},
      {head + "streams = [" + kAttention + "]\nmerge = \"add\"\n" + ffn + tail, "model.templates.t.streams",
       "expected a list of 2 .. 16 streams", 5},
      {head + two + ffn + tail, "model.templates.t.merge", "is required with streams", 5},
      {head + "mixer = { plugin = \"attention\" }\n" + two + "merge = \"add\"\n" + ffn + tail, "model.templates.t.mixer",
       "either a mixer or streams", 5},
      {head + "mixer = { plugin = \"attention\" }\nmerge = \"add\"\n" + ffn + tail, "model.templates.t.merge",
       "needs streams", 6},
      {head + two + "merge = \"cross_attn\"\nmerge_heads = 3\n" + ffn + tail, "model.templates.t.merge_heads",
       "divides d_model 16, got 3", 7},
      {head + two + "merge = \"add\"\nmerge_heads = 2\n" + ffn + tail, "model.templates.t.merge_heads",
       "only a cross_attn merge has heads", 7},
      {head + "streams = [" + kAttention + ",\n  { mixer = { plugin = \"attention\" }, widht = 8 }]\nmerge = \"concat\"\n" + ffn + tail,
       "model.templates.t.streams.1.widht", "did you mean \"width\"", 6},
      {head + two + "merge = \"add\"\n" + ffn + "[model.mtp]\ndepth = 1\n" + tail, "model.mtp.depth",
       "the last layer has parallel streams", 9},
  };
  mixlab::test::check_refusals(cases);


  // A stream's plugin that is an FFN, and a bad plugin key at the stream's width, named by their slot.
  const fs::path dir = mixlab::test::scratch("streams-bad");
  fs::create_directories(dir);
  std::ofstream(dir / "ffn.toml") << head + "streams = [" + kAttention + ", { mixer = { plugin = \"mlp\" } }]\nmerge = \"add\"\n" +
                                         ffn + tail;
  auto r = mixlab::test::host("validate " + (dir / "ffn.toml").string());
  CHECK(r.exit_code > 0);
  CHECK(r.exit_code < 128);
  CHECK(r.output.find("ffn.toml:5:") != std::string::npos);
  CHECK(r.output.find("model.templates.t.streams.1.mixer.plugin: \"mlp\" is an FFN plugin") != std::string::npos);
  // End to end: `host validate` names the file, the line and the field, and fails without a signal.
  std::ofstream(dir / "bad.toml") << cases[0].text;
  r = mixlab::test::host("validate " + (dir / "bad.toml").string());
  CHECK(r.exit_code > 0);
  CHECK(r.exit_code < 128);
  CHECK(r.output.find("bad.toml:6:") != std::string::npos);
  CHECK(r.output.find("model.templates.t.merge: expected \"concat\"") != std::string::npos);
}

TEST_CASE("experiments/dual_stream_small.toml trains and generates through decode steps") {
  mixlab::test::check_trains_and_decodes(std::string(MIXLAB_SOURCE_DIR) + "/experiments/dual_stream_small.toml",
                                         "streams-small");
}
}  // TEST_SUITE("parallel_streams")
