// MLA: `absorbed` against `naive` on the same weights. Forward (training) time
// against T, and decode time per token at two contexts: naive up-projects the
// per-head K and V of the whole latent cache at every step, absorbed attends
// over the cache as it is. The decode state (latent + rope key) is the same for
// both; the table prints it against multi-head attention of the same heads.
//
// Loaded through the host runtime (Registry -> PluginInstance -> DecodeState),
// as a training run or `host generate` loads them.
//
//   bench_mla [--max-len 2048] [--d-model 512] [--heads 8] [--latent 256] [--nope 64] [--rope 32]
//             [--v 64] [--batch 1] [--rounds 3] [--threads 1] [--dtype float32]
//             [--contexts 512,4096] [--decode-tokens 8] [--decode-rounds 5] [--plugins DIR]
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <map>

using namespace mixlab;
using namespace mixlab::bench;

namespace {

struct Options {
  int64_t max_len = 2048, d_model = 512, heads = 8, latent = 256, nope = 64, rope = 32, v = 64, batch = 1;
  int rounds = 3, threads = 1, decode_tokens = 8, decode_rounds = 5;
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<int64_t> contexts{512, 4096};
  std::filesystem::path plugins;
};

Options parse(int argc, char** argv) {
  Options o;
  o.plugins = default_plugin_dir();
  std::string dtype = "float32";
  CLI::App app{"mla: absorbed vs naive, forward against T and decode per token"};
  app.add_option("--max-len", o.max_len, "largest T of the forward table (from 256, doubling)");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--heads", o.heads, "heads");
  app.add_option("--latent", o.latent, "latent_dim");
  app.add_option("--nope", o.nope, "nope_head_dim");
  app.add_option("--rope", o.rope, "rope_head_dim");
  app.add_option("--v", o.v, "v_head_dim");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--rounds", o.rounds, "interleaved timing rounds (forward)");
  app.add_option("--threads", o.threads, "ATen threads");
  app.add_option("--dtype", dtype, "float32 | float64 | bfloat16");
  app.add_option("--contexts", o.contexts, "decode contexts")->delimiter(',');
  app.add_option("--decode-tokens", o.decode_tokens, "tokens decoded per measurement");
  app.add_option("--decode-rounds", o.decode_rounds, "interleaved timing rounds (decode)");
  app.add_option("--plugins", o.plugins, "plugin folder");
  parse_or_exit(app, argc, argv);
  o.dtype = dtype_named(dtype);
  return o;
}

struct Mixer {
  std::shared_ptr<PluginInstance> instance;
  std::vector<torch::Tensor> params;
};

}  // namespace

int main(int argc, char** argv) try {
  Options o = parse(argc, argv);
  torch::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;
  Registry registry;
  registry.add_folder(o.plugins);
  const std::string config = "{\"n_heads\": " + std::to_string(o.heads) + ", \"latent_dim\": " + std::to_string(o.latent) +
                             ", \"nope_head_dim\": " + std::to_string(o.nope) + ", \"rope_head_dim\": " +
                             std::to_string(o.rope) + ", \"v_head_dim\": " + std::to_string(o.v) + "}";
  const int64_t longest = std::max(o.max_len, *std::max_element(o.contexts.begin(), o.contexts.end()) + o.decode_tokens);
  std::map<std::string, Mixer> mixers;
  std::vector<torch::Tensor> weights;  // one set, shared: the layout is the same
  for (const char* impl : {"naive", "absorbed"}) {
    auto inst = PluginInstance::create(registry.select({"mla", impl, std::nullopt}), o.d_model, longest, config);
    if (weights.empty()) weights = inst->init_params(o.dtype, torch::kCPU, 1, 0.02);
    mixers[impl] = {inst, weights};
  }
  std::cout << "mla " << config << ", d_model " << o.d_model << ", " << c10::toString(o.dtype) << ", B=" << o.batch
            << ", " << o.threads << " thread(s)\nKV cache per token and layer (bf16): "
            << mixers["absorbed"].instance->cost(1, 2).state_bytes
            << " B; multi-head attention of the same heads: " << o.heads * (o.nope + o.rope + o.v) * 2 << " B\n\n";

  Table forward({"T", "naive ms", "absorbed ms", "absorbed/naive"});
  for (int64_t T = 256; T <= o.max_len; T *= 2) {
    auto x = torch::randn({o.batch, T, o.d_model}, torch::TensorOptions().dtype(o.dtype));
    auto medians = interleaved_medians({[&] { mixers["naive"].instance->forward(x, weights); },
                                        [&] { mixers["absorbed"].instance->forward(x, weights); }},
                                       o.rounds);
    forward.add({std::to_string(T), fmt(medians[0] * 1e3), fmt(medians[1] * 1e3), fmt(medians[1] / medians[0])});
  }
  std::cout << "forward (median of " << o.rounds << " interleaved rounds)\n";
  forward.print();

  // Decode: single-token steps after a prefill of `context` tokens, every (impl, context) interleaved.
  std::vector<std::unique_ptr<DecodeState>> states;
  for (int64_t context : o.contexts)
    for (const char* impl : {"naive", "absorbed"}) {
      states.push_back(mixers[impl].instance->new_state(o.batch, o.dtype, torch::kCPU));
      states.back()->step(torch::randn({o.batch, context, o.d_model}, torch::TensorOptions().dtype(o.dtype)), weights);
    }
  auto token = torch::randn({o.batch, 1, o.d_model}, torch::TensorOptions().dtype(o.dtype));
  std::vector<std::function<void()>> calls;
  for (auto& s : states)
    calls.push_back([&, state = s.get()] {
      for (int i = 0; i < o.decode_tokens; ++i) state->step(token, weights);
    });
  auto medians = interleaved_medians(calls, o.decode_rounds);
  Table decode({"context", "naive ms/token", "absorbed ms/token", "absorbed/naive"});
  for (size_t c = 0; c < o.contexts.size(); ++c)
    decode.add({std::to_string(o.contexts[c]), fmt(medians[2 * c] * 1e3 / o.decode_tokens),
                fmt(medians[2 * c + 1] * 1e3 / o.decode_tokens), fmt(medians[2 * c + 1] / medians[2 * c])});
  std::cout << "\ndecode (median of " << o.decode_rounds << " interleaved rounds of " << o.decode_tokens
            << " single-token steps after a prefill of `context` tokens; the context grows by the warm-up and each round)\n";
  decode.print();
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_mla: " << e.what() << "\n";
  return 1;
}
