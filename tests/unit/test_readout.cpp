// The readout (model/readout.hpp): MAD's autoencoder readout against a float64
// rebuild written here from its definition (the logits and every parameter's
// gradient, tied and untied heads, RMSNorm and LayerNorm, pre- and post-norm);
// explain and the config's JSON; a tiny `host run` on builtin:compression that
// beats the unigram baseline; and the refusals: a bad readout, compression
// without it, it without compression, generate and export of such a model.
// Registered in `unit`.
#include "experiment/loader.hpp"
#include "host_test_helpers.hpp"
#include "model/explain.hpp"
#include "model/readout.hpp"
#include "model_reference_check.hpp"
#include "refusal_check.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 12, kWidth = 16, kLength = 10;

std::string experiment_text(const std::string& norm, const std::string& position, bool tied) {
  std::ostringstream t;
  t << "[job]\nseed = 4\nplugin_path = [\"" << MIXLAB_TEST_PLUGIN_DIR << "\"]\n"
    << "[model]\nd_model = " << kWidth << "\nmax_seq_len = 16\nnorm = \"" << norm << "\"\nnorm_position = \""
    << position << "\"\ntie_embeddings = " << (tied ? "true" : "false") << "\ninit_std = 0.3\nreadout = \"autoencoder\"\n"
    << "[model.templates.t]\nmixer = { plugin = \"prefix_mean\" }\n"
    << "ffn = { plugin = \"mlp\", activation = \"relu\", hidden = 24 }\n"
    << "[[model.schedule]]\ntemplate = \"t\"\nrepeat = 2\n"
    << "[data]\nsource = \"builtin:compression\"\nseq_len = " << kLength << "\n"
    << "options = { vocab_size = " << kVocab << ", input_seq_len = " << kLength << " }\n[training]\nsteps = 1\n";
  return t.str();
}

// The model in float64 from the definitions, on copies of its parameters: the test plugins'
// blocks (model_reference_check.hpp) and the readout.
struct Reference : mixlab::test::PrefixMeanReference {
  bool tied;

  // MAD's sin-cos embedding, element by element: P[t][i] = sin(t w_i), P[t][d/2 + i] = cos(t w_i),
  // w_i = 1 / 10000^(i / (d/2 - 1)).
  static torch::Tensor positions(int64_t T, int64_t d) {
    auto P = torch::zeros({T, d}, torch::kFloat64);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double w = 1.0 / std::pow(10000.0, static_cast<double>(i) / static_cast<double>(d / 2 - 1));
        P[t][i] = std::sin(static_cast<double>(t) * w);
        P[t][d / 2 + i] = std::cos(static_cast<double>(t) * w);
      }
    return P;
  }
  torch::Tensor linear(const torch::Tensor& x, const std::string& name) const {
    return torch::matmul(x, p.at(name + ".weight").t()) + p.at(name + ".bias");
  }
  // GELU with the error function, as torch.nn.GELU().
  static torch::Tensor gelu(const torch::Tensor& x) { return 0.5 * x * (1.0 + torch::erf(x / std::sqrt(2.0))); }

  torch::Tensor logits(const torch::Tensor& tokens) const {
    auto h = torch::embedding(p.at("embed.weight"), tokens);
    for (int l = 0; l < 2; ++l) h = layer(h, "layers." + std::to_string(l));
    auto features = pre ? norm(h, "final_norm") : h;
    // The last position's features, decoded at every position of the sequence.
    const int64_t T = tokens.size(1);
    auto z = features.select(1, T - 1).unsqueeze(1) + positions(T, features.size(2)).unsqueeze(0);
    auto u = gelu(linear(norm(z, "readout.norm1"), "readout.fc1"));
    u = gelu(linear(norm(u, "readout.norm2"), "readout.fc2"));
    return torch::matmul(norm(u, "readout.norm"), p.at(tied ? "embed.weight" : "lm_head.weight").t());
  }
};

struct Variant {
  const char* norm;
  const char* position;
  bool tied;
};

// The line (from 1) of the first occurrence of `needle` in `text`.
int64_t line_of(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  REQUIRE(at != std::string::npos);
  return 1 + std::count(text.begin(), text.begin() + static_cast<long>(at), '\n');
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string problems_of(const std::string& text) {
  try {
    mixlab::parse_experiment(text, "x.toml");
  } catch (const mixlab::ExperimentError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("readout: the autoencoder's logits and every gradient equal a float64 rebuild") {
  for (const Variant v : {Variant{"rmsnorm", "pre", true}, Variant{"layernorm", "post", false}}) {
    CAPTURE(v.norm);
    CAPTURE(v.position);
    auto config = mixlab::parse_experiment(experiment_text(v.norm, v.position, v.tied), "x.toml");
    auto registry = mixlab::experiment_registry(config);
    mixlab::Model model(config, registry, kVocab, torch::kCPU);
    torch::manual_seed(3);
    auto tokens = torch::randint(0, kVocab, {3, kLength}, torch::kInt64);
    auto out = model.forward(tokens, true, 0);
    REQUIRE(out.logits.sizes() == torch::IntArrayRef({3, kLength, kVocab}));
    // A loss touching every logit with its own weight, so every gradient is checked.
    auto weights = torch::randn({3, kLength, kVocab}, torch::kFloat64);
    (out.logits * weights.to(torch::kFloat32)).sum().backward();

    Reference ref{{mixlab::test::float64_leaves(model), std::string(v.norm) == "layernorm",
                   std::string(v.position) == "pre", config.model.norm_eps},
                  v.tied};
    auto want = ref.logits(tokens);
    (want * weights).sum().backward();
    // Float32 against float64 through about a dozen products of width <= 24: 1e-5 relative
    // for the logits, 1e-4 for the gradients (the model_reference_check default).
    CHECK(mixlab::test::relative_error(out.logits, want) < 1e-5);
    mixlab::test::check_gradients(model, ref.p);
    int readout_params = 0;
    for (const auto& p : model.parameters()) readout_params += p.name.rfind("readout.", 0) == 0;
    CHECK(readout_params == (ref.layernorm ? 10 : 7));  // three norms (with biases in LayerNorm), two linear layers

    // The whole sequence is read from the last position: changing the first token changes
    // the logits at every position, changing nothing else.
    torch::NoGradGuard no_grad;
    auto other = tokens.clone();
    other.index_put_({0, 0}, (tokens[0][0].item<int64_t>() + 1) % kVocab);
    auto changed = (model.forward(other, false, 0).logits - model.forward(tokens, false, 0).logits).abs().amax(-1);
    CHECK(changed[0].gt(0).all().item<bool>());
    CHECK(changed.narrow(0, 1, 2).lt(1e-6).all().item<bool>());
  }
}

TEST_CASE("readout: explain counts its parameters; the config's JSON names it only when it is not lm") {
  auto config = mixlab::parse_experiment(experiment_text("layernorm", "pre", false), "x.toml");
  auto registry = mixlab::experiment_registry(config);
  auto report = mixlab::explain_report(config, registry);
  mixlab::Model model(config, registry, kVocab, torch::kCPU);
  CHECK(report["params_total"].get<double>() == static_cast<double>(model.n_parameters()));
  CHECK(report["readout"]["params"] == mixlab::readout_params(config.model));
  CHECK(config.to_json()["model"]["readout"] == "autoencoder");
  // Every config written before the readout existed keeps its JSON, so its sha256 (manifests,
  // the ranks' check) is unchanged.
  CHECK_FALSE(mixlab::load_experiment(mixlab::test::tiny_experiment()).to_json()["model"].contains("readout"));
  const std::string recall = replaced(replaced(experiment_text("rmsnorm", "pre", true), "readout = \"autoencoder\"\n", ""),
                                      "builtin:compression", "builtin:recall");
  auto lm = mixlab::parse_experiment(recall, "x.toml");
  auto lm_report = mixlab::explain_report(lm, mixlab::experiment_registry(lm));
  CHECK(lm_report["readout"]["kind"] == "lm");
  CHECK(lm_report["readout"]["params"] == 0);
}

TEST_CASE("readout: a bad readout, compression without it and it without compression are refused with their line") {
  const std::string base = experiment_text("rmsnorm", "pre", true);
  const std::string readout = "readout = \"autoencoder\"";
  const int64_t readout_line = line_of(base, readout), source_line = line_of(base, "source =");
  const std::string recall = replaced(replaced(base, "builtin:compression", "builtin:recall"),
                                      "options = { vocab_size = 12, input_seq_len = 10 }", "");
  mixlab::test::check_refusals({
      {replaced(base, readout, "readout = \"autoencodr\""), "model.readout",
       "expected one of lm | autoencoder, got \"autoencodr\"", readout_line},
      {replaced(base, readout, "readout = \"lm\""), "data.source",
       "builtin:compression needs model.readout = \"autoencoder\"", source_line},
      {recall, "model.readout", "trains on builtin:compression only", readout_line},
      {replaced(base, "d_model = 16", "d_model = 15"), "model.readout", "an even model.d_model >= 4", readout_line},
      {replaced(base, readout, readout + "\nmtp = { depth = 1 }"), "model.readout", "model.mtp.depth", readout_line},
  });
  // Without a readout line, the source is refused at its own line.
  const std::string lm = replaced(base, readout + "\n", "");
  CHECK(problems_of(lm).find("x.toml:" + std::to_string(line_of(lm, "source =")) + ":") != std::string::npos);
  // And the file through `host validate`: file:line, field, exit 1.
  const auto file = mixlab::test::scratch("readout-refused.toml");
  std::ofstream(file) << replaced(base, readout, "readout = \"autoencodr\"");
  auto r = mixlab::test::host("validate " + file.string(), 60);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find(file.string() + ":" + std::to_string(readout_line) + ":") != std::string::npos);
  CHECK(r.output.find("model.readout: expected one of lm | autoencoder") != std::string::npos);
}

TEST_CASE("readout: a tiny run on builtin:compression beats the unigram baseline; generate and export refuse it") {
  using mixlab::test::host;
  const auto dir = mixlab::test::scratch("readout-run");
  fs::create_directories(dir);
  // Six tokens of five symbols and the compression token, learned positions to tell them apart.
  std::ofstream(dir / "e.toml") << "[job]\nname = \"compress\"\nseed = 1\n"
                                << "[model]\nd_model = 32\nmax_seq_len = 8\npositional = \"learned\"\n"
                                << "readout = \"autoencoder\"\n[model.templates.t]\nmixer = { plugin = \"prefix_mean\" }\n"
                                << "ffn = { plugin = \"mlp\", activation = \"swiglu\", hidden = 64 }\n"
                                << "[[model.schedule]]\ntemplate = \"t\"\nrepeat = 2\n"
                                << "[data]\nsource = \"builtin:compression\"\nseq_len = 7\n"
                                << "options = { vocab_size = 6, input_seq_len = 7, train_examples = 4096, val_examples = 256 }\n"
                                << "[optimizer]\nlr = 1e-2\n[lr_scheduler]\nwarmup_steps = 20\n"
                                << "[training]\nsteps = 300\nbatch_size = 32\nthreads = 1\n"
                                << "[validation]\nevery = 0\nbatches = 8\n[checkpoint]\nevery = 0\n";
  const auto run_dir = dir / "run";
  auto r = host("run " + (dir / "e.toml").string() + " --output-dir " + run_dir.string(), 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto m = mixlab::test::read_json(run_dir / "manifest.json");
  const double accuracy = m["results"]["probe_accuracy"], loss = m["results"]["final_val_loss"];
  const double unigram = m["data"]["unigram_baseline_loss"];
  // Chance: the compression token (1 of 7 positions) is always right, the other 6 one of 5 symbols.
  const double chance = (1.0 + 6.0 / 5.0) / 7.0;
  CHECK(m["config"]["model"]["readout"] == "autoencoder");
  CHECK(m["model"]["params_total"].get<double>() > 0);
  MESSAGE("accuracy " << accuracy << " (chance " << chance << "), loss " << loss << " (unigram " << unigram << ")");
  CHECK(accuracy > chance + 0.2);
  CHECK(loss < unigram - 0.3);

  auto generated = host("generate " + run_dir.string() + " --tokens 4", 60);
  CHECK(generated.exit_code == 1);
  CHECK(generated.output.find("model.readout = \"autoencoder\"") != std::string::npos);
  auto exported = host("export " + run_dir.string() + " --format hf --output-dir " + (dir / "hf").string(), 60);
  CHECK(exported.exit_code == 1);
  CHECK(exported.output.find("model.readout = \"autoencoder\"") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "hf"));
  // host forward gives the reconstructions: (B, T, vocab) logits.
  std::ofstream(dir / "ids.txt") << "0 1 2 3 4 0 5\n";
  auto forward = host("forward " + run_dir.string() + " --input " + (dir / "ids.txt").string() + " --output " +
                          (dir / "logits.safetensors").string(),
                      60);
  INFO(forward.output);
  CHECK(forward.exit_code == 0);
}
