// RetNet: `chunkwise` forward time against T (linear: time per token flat),
// `parallel` beside it (quadratic), and decode time per token at two contexts
// (flat: the state is (d_k, d_v) per head whatever the context).
//
// The implementations are loaded through the host runtime (Registry ->
// PluginInstance -> DecodeState), like a training run or `host generate` loads them.
//
//   bench_retnet [--max-len 8192] [--d-model 256] [--heads 4] [--chunk 64] [--batch 1]
//                [--rounds 3] [--budget 2] [--threads 1] [--dtype float32]
//                [--contexts 512,8192] [--decode-tokens 32] [--decode-rounds 9] [--plugins DIR]
//                [--markdown FILE]
//
// A candidate whose last call took more than --budget seconds is not run at
// larger T (parallel grows ~4x per doubling). The Markdown file gets the forward table.
#include "bench_util.hpp"

#include "runtime/instance.hpp"
#include "runtime/registry.hpp"

#include <filesystem>
#include <map>
#include <sstream>

using namespace mixlab;
using namespace mixlab::bench;

namespace {

struct Options {
  int64_t max_len = 8192;
  int64_t d_model = 256;
  int64_t heads = 4;
  int64_t chunk = 64;
  int64_t batch = 1;
  int rounds = 3;
  double budget_s = 2.0;
  int threads = 1;
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<int64_t> contexts{512, 8192};
  int decode_tokens = 32;
  int decode_rounds = 9;  // steps are short: more rounds to steady the median
  std::filesystem::path plugins;
  std::string markdown;
};

Options parse(int argc, char** argv) {
  Options o;
  o.plugins = mixlab::bench::default_plugin_dir();
  std::string dtype = "float32";
  CLI::App app{"retnet: chunkwise scaling in T and decode time per token"};
  app.add_option("--max-len", o.max_len, "largest T (from 512, doubling)");
  app.add_option("--d-model", o.d_model, "model width");
  app.add_option("--heads", o.heads, "retention heads");
  app.add_option("--chunk", o.chunk, "chunk size");
  app.add_option("--batch", o.batch, "batch size");
  app.add_option("--rounds", o.rounds, "interleaved timing rounds");
  app.add_option("--budget", o.budget_s, "seconds one call may take before a candidate is dropped");
  app.add_option("--threads", o.threads, "ATen threads");
  app.add_option("--dtype", dtype, "float32 | float64 | bfloat16");
  app.add_option("--contexts", o.contexts, "decode contexts")->delimiter(',');
  app.add_option("--decode-tokens", o.decode_tokens, "tokens decoded per measurement");
  app.add_option("--plugins", o.plugins, "plugin folder");
  app.add_option("--markdown", o.markdown, "also write the table as Markdown");
  mixlab::bench::parse_or_exit(app, argc, argv);
  o.dtype = mixlab::bench::dtype_named(dtype);
  return o;
}

// One implementation loaded through the host runtime; every implementation gets the same weights.
struct Mixer {
  std::shared_ptr<PluginInstance> instance;
  std::vector<torch::Tensor> params;
};

Mixer load(const Registry& registry, const std::string& impl, const Options& o) {
  auto ref = registry.select({"retnet", impl, std::nullopt});
  std::string config = "{\"n_heads\": " + std::to_string(o.heads) + ", \"chunk_size\": " + std::to_string(o.chunk) + "}";
  int64_t longest = std::max(o.max_len, *std::max_element(o.contexts.begin(), o.contexts.end()) + o.decode_tokens);
  auto inst = PluginInstance::create(ref, o.d_model, longest, config);
  return {inst, inst->init_params(o.dtype, torch::kCPU, 1, 0.02)};
}

}  // namespace

int main(int argc, char** argv) try {
  Options o = parse(argc, argv);
  torch::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;

  Registry registry;
  registry.add_folder(o.plugins);
  std::map<std::string, Mixer> mixers;
  for (const char* impl : {"chunkwise", "parallel", "recurrent"}) mixers[impl] = load(registry, impl, o);

  std::cout << "retnet, " << c10::toString(o.dtype) << ", B=" << o.batch << ", d_model=" << o.d_model
            << ", heads=" << o.heads << ", chunk=" << o.chunk << ", " << o.threads << " thread(s), median of "
            << o.rounds << " interleaved rounds\n\n";

  // ---- forward against T
  const std::vector<std::string> names{"chunkwise", "parallel"};
  std::map<std::string, double> last;  // seconds at the previous T; absent once dropped
  for (const auto& n : names) last[n] = 0.0;
  Table forward({"T", "chunkwise ms", "chunkwise us/token", "chunkwise growth", "parallel ms", "parallel growth",
                 "parallel/chunkwise", "chunkwise peak MiB", "parallel peak MiB"});
  for (int64_t T = 512; T <= o.max_len; T *= 2) {
    auto x = torch::randn({o.batch, T, o.d_model}, torch::TensorOptions().dtype(o.dtype));
    std::vector<std::string> active;
    std::vector<std::function<void()>> calls;
    for (const auto& n : names)
      if (last.count(n) && last[n] <= o.budget_s)
        active.push_back(n), calls.push_back([&, n] { mixers[n].instance->forward(x, mixers[n].params); });
      else
        last.erase(n);
    auto medians = interleaved_medians(calls, o.rounds);
    std::map<std::string, double> now, peak;
    for (size_t i = 0; i < active.size(); ++i) {
      now[active[i]] = medians[i];
      peak[active[i]] = peak_extra_mib(calls[i]);
    }
    auto has = [&](const std::string& n) { return now.count(n) > 0; };
    auto ms = [&](const std::string& n) { return has(n) ? fmt(now[n] * 1e3) : std::string("(skipped)"); };
    auto growth = [&](const std::string& n) { return has(n) && last.count(n) && last[n] > 0 ? fmt(now[n] / last[n]) : "-"; };
    auto mib = [&](const std::string& n) { return has(n) ? fmt(peak[n], 4) : "-"; };
    forward.add({std::to_string(T), ms("chunkwise"),
                 has("chunkwise") ? fmt(now["chunkwise"] * 1e6 / static_cast<double>(T * o.batch)) : "-",
                 growth("chunkwise"), ms("parallel"), growth("parallel"),
                 has("parallel") && has("chunkwise") ? fmt(now["parallel"] / now["chunkwise"]) : "-", mib("chunkwise"),
                 mib("parallel")});
    for (const auto& [n, t] : now) last[n] = t;
  }
  std::cout << "forward (growth = time(T) / time(T/2): linear gives 2, quadratic 4)\n";
  forward.print();

  // ---- decode: single-token steps after a prefill of `context` tokens (each impl prefills with its own core)
  Table decode({"impl", "context", "ms/token", "vs first context"});
  for (const char* impl : {"recurrent", "chunkwise"}) {
    auto& m = mixers[impl];
    std::vector<torch::Tensor> params;
    for (const auto& p : m.params) params.push_back(p.detach());
    std::vector<std::unique_ptr<DecodeState>> states;
    for (int64_t context : o.contexts) {
      states.push_back(m.instance->new_state(o.batch, o.dtype, torch::kCPU));
      states.back()->step(torch::randn({o.batch, context, o.d_model}, torch::TensorOptions().dtype(o.dtype)), params);
    }
    auto token = torch::randn({o.batch, 1, o.d_model}, torch::TensorOptions().dtype(o.dtype));
    std::vector<std::function<void()>> calls;
    for (auto& s : states)
      calls.push_back([&, state = s.get()] {
        for (int i = 0; i < o.decode_tokens; ++i) state->step(token, params);
      });
    auto medians = interleaved_medians(calls, o.decode_rounds);
    for (size_t i = 0; i < o.contexts.size(); ++i)
      decode.add({impl, std::to_string(o.contexts[i]), fmt(medians[i] * 1e3 / o.decode_tokens),
                  fmt(medians[i] / medians[0])});
  }
  std::cout << "\ndecode (median of " << o.decode_rounds << " interleaved rounds of " << o.decode_tokens
            << " single-token steps after a prefill of `context` tokens; state bytes/sequence "
            << mixers["recurrent"].instance->cost(o.contexts.back(), 4).state_bytes << ", constant in the context)\n";
  decode.print();
  if (!o.markdown.empty()) forward.write_markdown(o.markdown);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "bench_retnet: " << e.what() << "\n";
  return 1;
}
