// Family checks for attention: the HF invariants (GQA, window, RoPE shift and
// linear scaling), decode across the window boundary, and every fast
// implementation against `reference` for outputs and gradients.
#include "checks.hpp"

#include "flash.hpp"
#include "module.hpp"
#include "sdpa.hpp"

#include <mixlab/testing.hpp>

#include <functional>

namespace mixlab::attention {
namespace {

using torch::Tensor;
namespace mt = mixlab::testing;

constexpr int64_t kDModel = 64;
constexpr int64_t kBatch = 2;
// GQA (4 query heads on 2 kv heads), partial rotary, biases: every feature at once.
const std::string kGqa =
    R"({"n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "partial_rotary_factor": 0.5, "qkv_bias": true,
        "out_bias": true)";

std::string gqa_config(const std::string& extra = "") { return kGqa + (extra.empty() ? "" : ", " + extra) + "}"; }

Tensor normal(std::vector<int64_t> shape, torch::ScalarType dtype, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::empty(shape, torch::kFloat64).normal_(0.0, 1.0, gen).to(dtype);
}

template <class Core>
Attention<Core> make(const std::string& config) {
  return Attention<Core>(mt::args(kDModel, 256, config));
}

// y and the gradients of <y, g> for a fixed random g: x first, then the parameters.
struct Run {
  Tensor y;
  std::vector<Tensor> grads;
};

template <class Core>
Run run(const std::string& config, torch::ScalarType dtype, int64_t T, uint64_t seed) {
  auto m = make<Core>(config);
  auto params = mt::with_grad(mt::make_params(m, dtype, seed));
  auto x = normal({kBatch, T, kDModel}, dtype, seed + 1).requires_grad_(true);
  auto y = m.forward(x, params, {}).y;
  (y * normal(y.sizes().vec(), dtype, seed + 2)).sum().backward();
  Run r{y.detach(), {x.grad()}};
  for (const auto& p : params.tensors()) r.grads.push_back(p.grad());
  return r;
}

// y and gradients of one run against another's.
CheckResult close_runs(const std::string& what, const Run& got, const Run& want, double out_tol, double grad_tol) {
  std::vector<CheckResult> results{mt::expect_close(what + " y", mt::scaled_max_error(got.y, want.y), out_tol)};
  double grad_err = 0;
  for (size_t i = 0; i < got.grads.size(); ++i)
    grad_err = std::max(grad_err, mt::scaled_max_error(got.grads[i], want.grads[i]));
  results.push_back(mt::expect_close(what + " gradients", grad_err, grad_tol));
  return mt::all_of(results);
}

// `Core` in `dtype` against `reference` in float64, on the same weights and inputs.
template <class Core>
CheckResult against_reference(const std::string& what, const std::string& config, torch::ScalarType dtype,
                              int64_t T, uint64_t seed, double out_tol, double grad_tol) {
  return close_runs(what, run<Core>(config, dtype, T, seed), run<Reference>(config, torch::kFloat64, T, seed), out_tol,
                    grad_tol);
}

// flash or sdpa == reference: float64 tight, float32 per §9, bfloat16 by relative RMS.
template <class Core>
CheckResult equals_reference(uint64_t seed) {
  std::vector<CheckResult> results;
  const std::vector<std::pair<std::string, std::string>> configs{
      {"MHA global", R"({"n_heads": 4, "flash_tile": 16})"},
      {"GQA global", gqa_config(R"("flash_tile": 16)")},
      {"GQA window 11", gqa_config(R"("flash_tile": 16, "window": 11)")},
      {"MQA window 4", R"({"n_heads": 4, "n_kv_heads": 1, "window": 4, "flash_tile": 8})"}};
  for (const auto& [name, config] : configs) {
    // T = 50 is not a multiple of the tile.
    results.push_back(against_reference<Core>(name + " float64 T=50", config, torch::kFloat64, 50, seed, 1e-10, 1e-10));
    results.push_back(against_reference<Core>(name + " float32 T=50", config, torch::kFloat32, 50, seed, 1e-4, 1e-3));
  }
  results.push_back(against_reference<Core>("GQA default tile float64 T=130", gqa_config(), torch::kFloat64, 130, seed,
                                            1e-10, 1e-10));
  auto config = gqa_config(R"("window": 9, "flash_tile": 16)");
  auto got = run<Core>(config, torch::kBFloat16, 40, seed), want = run<Reference>(config, torch::kBFloat16, 40, seed);
  results.push_back(mt::expect_close("bfloat16 y relative RMS vs reference in bfloat16", mt::relative_rms(got.y, want.y), 5e-3));
  return mt::all_of(results);
}

// Exact for reference and flash; sdpa takes is_causal without a window and a
// mask with one (two kernels), so it is held to float64 rounding.
template <class Core>
CheckResult window_at_least_T_is_global(const std::string& name, double tol, uint64_t seed) {
  const int64_t T = 37;
  auto m = make<Core>(gqa_config(R"("flash_tile": 16)"));
  auto params = mt::make_params(m, torch::kFloat64, seed);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
  auto y = m.forward(x, params, {}).y;
  std::vector<CheckResult> results;
  for (int64_t w : {T, T + 5}) {
    auto windowed = make<Core>(gqa_config(R"("flash_tile": 16, "window": )" + std::to_string(w)));
    results.push_back(mt::expect_close(name + " window " + std::to_string(w) + " vs global, T=" + std::to_string(T),
                                       mt::scaled_max_error(windowed.forward(x, params, {}).y, y), tol));
  }
  return mt::all_of(results);
}

// GQA == MHA with each kv head repeated for its group: on the attention core
// with the same q, k, v, bitwise for every implementation (reference and sdpa
// repeat K/V as HF does; flash copies each K/V tile over its group), and for
// the whole layer with repeated K/V weights, where projections of two widths
// round apart (1e-14).
template <class Core>
CheckResult gqa_is_repeated_mha(const std::string& name, double core_tol, uint64_t seed) {
  const int64_t T = 29, group = 2, head_dim = 16;
  const std::string both = R"("head_dim": 16, "partial_rotary_factor": 0.5, "qkv_bias": true, "out_bias": true,
                              "window": 7, "flash_tile": 8)";
  auto gqa = make<Core>(R"({"n_heads": 4, "n_kv_heads": 2, )" + both + "}");
  auto mha = make<Core>(R"({"n_heads": 4, "n_kv_heads": 4, )" + both + "}");
  Heads h{normal({kBatch, 4, T, head_dim}, torch::kFloat64, seed), normal({kBatch, 2, T, head_dim}, torch::kFloat64, seed + 1),
          normal({kBatch, 2, T, head_dim}, torch::kFloat64, seed + 2)};
  Heads repeated_heads{h.q, h.k.repeat_interleave(group, 1), h.v.repeat_interleave(group, 1)};
  auto core = mt::expect_close(name + " core: GQA (4 q heads, 2 kv heads, window 7) vs MHA on repeated K/V",
                               mt::scaled_max_error(Core::attend(h, gqa.config()), Core::attend(repeated_heads, mha.config())),
                               core_tol);
  // kv head h serves query heads h * group ... h * group + group - 1: repeat its rows interleaved.
  auto repeat = [&](const Tensor& w) { return w.unflatten(0, {-1, head_dim}).repeat_interleave(group, 0).flatten(0, 1); };
  auto p = mt::make_params(gqa, torch::kFloat64, seed);
  std::vector<Tensor> tensors;
  for (const auto& n : p.names()) tensors.push_back(n == "wk" || n == "wv" || n == "bk" || n == "bv" ? repeat(p[n]) : p[n]);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 3);
  auto layer = mt::expect_close(name + " layer: GQA vs MHA with repeated wk, wv, bk, bv",
                                mt::scaled_max_error(gqa.forward(x, p, {}).y, mha.forward(x, Params(p.names(), tensors), {}).y),
                                1e-14);
  return mt::all_of({core, layer});
}

// Shifting every position leaves q.k unchanged: scores at the Rope level
// (fp64 and fp32 per §5) and the whole layer in float64.
CheckResult rope_shift_invariance(uint64_t seed) {
  const int64_t T = 24, shift = 45;
  auto m = make<Reference>(R"({"n_heads": 4, "partial_rotary_factor": 0.75})");
  const Rope& rope = m.config().rope;
  std::vector<CheckResult> results;
  for (auto [dtype, tol] : {std::pair{torch::kFloat64, 1e-12}, std::pair{torch::kFloat32, 1e-5}}) {
    auto q = normal({1, 1, T, 16}, dtype, seed), k = normal({1, 1, T, 16}, dtype, seed + 1);
    auto scores = [&](const Tensor& pos) {
      auto [cos, sin] = rope.tables(pos, dtype);
      return torch::matmul(rope.apply(q, cos, sin), rope.apply(k, cos, sin).transpose(-2, -1));
    };
    auto pos = torch::arange(T, torch::kFloat64);
    results.push_back(mt::expect_close(std::string("scores ") + c10::toString(dtype) + " shift " +
                                           std::to_string(shift),
                                       mt::scaled_max_error(scores(pos + shift), scores(pos)), tol));
  }
  auto params = mt::make_params(m, torch::kFloat64, seed);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 2);
  auto pos = torch::arange(T, torch::kFloat64);
  results.push_back(mt::expect_close("layer output float64, shift " + std::to_string(shift),
                                     mt::scaled_max_error(m.forward_at(x, params, pos + shift),
                                                          m.forward_at(x, params, pos)),
                                     1e-10));
  return mt::all_of(results);
}

// The layers the `kernels` checks compare: GQA with partial rotary, biases and another theta, and
// MHA with full rotary; configs without their closing brace, which with_kernels adds.
const std::vector<std::pair<std::string, std::string>>& kernel_configs() {
  static const std::vector<std::pair<std::string, std::string>> configs{
      {"GQA partial rotary", kGqa + R"(, "rope_theta": 500.0)"}, {"MHA full rotary", R"({"n_heads": 4)"}};
  return configs;
}

std::string with_kernels(const std::string& open, const char* kernels) {
  return open + R"(, "kernels": ")" + kernels + R"("})";
}

// kernels = "fused" (one q/k/v product, the RoPE kernel of rope_kernel.hpp) against "reference"
// (three products, Rope::apply's composed ops) in float64, on the whole layer (outputs and the gradients of x and every parameter, so the kernel's backward
// too): partial rotary with GQA and biases, and full rotary. float64 to rounding (1e-12),
// float32 against the float64 reference at 1e-5 (outputs) and 1e-4 (gradients); bfloat16 (8-bit
// mantissa, unit roundoff 3.9e-3) by relative RMS against float64 at 1e-2, the composed form
// held to the same bound beside it.
CheckResult fused_kernels_equal_reference(uint64_t seed) {
  const int64_t T = 37;
  std::vector<CheckResult> results;
  for (const auto& [name, open] : kernel_configs()) {
    auto with = [&open](const char* kernels) { return with_kernels(open, kernels); };
    auto want = run<Reference>(with("reference"), torch::kFloat64, T, seed);
    results.push_back(close_runs(name + " float64", run<Reference>(with("fused"), torch::kFloat64, T, seed), want,
                                 1e-12, 1e-12));
    results.push_back(close_runs(name + " float32", run<Reference>(with("fused"), torch::kFloat32, T, seed), want,
                                 1e-5, 1e-4));
    for (const char* kernels : {"fused", "reference"})
      results.push_back(mt::expect_close(name + " bfloat16 " + kernels + " y relative RMS vs float64",
                                         mt::relative_rms(run<Reference>(with(kernels), torch::kBFloat16, T, seed).y,
                                                          want.y.to(torch::kBFloat16)),
                                         1e-2));
  }
  return mt::all_of(results);
}

// Causal bfloat16 `sdpa` on the CPU with kernels = "fused" takes flash_bfloat16.hpp's forward and
// backward. The backwards alone (the AMX kernel where the CPU has AMX, and the float32 form), on
// shapes with a partial tile in T and in D, two tiles and two panels of D, and strided q, k, v
// (heads of a (B, T, H, D) tensor): dq, dk, dv against a float64 softmax attention at relative RMS
// 1e-2 (bfloat16: unit roundoff 3.9e-3), LibTorch's own bfloat16 backward held to the same bound
// beside them. The whole layer, fused and reference kernels: y and the gradients of x and every
// parameter against `reference` in float64, at 5e-2 (each weight's gradient sums B T bfloat16
// products; both kernels measure 1.2-1.3e-2 on kernel_configs()).
CheckResult sdpa_bfloat16_backward(uint64_t seed) {
  const int64_t T = 45;
  const double scale = 0.3;
  std::vector<CheckResult> results;
  results.push_back(mt::expect_close("the fused form applies to bfloat16 on the CPU (1: it does not)",
                                     CausalFlashBfloat16::applies(torch::zeros({1}, torch::kBFloat16)) ? 0.0 : 1.0,
                                     0.0));
  struct Shape {
    int64_t T, D;
    bool strided;
  };
  for (const Shape shape : {Shape{45, 16, false}, Shape{130, 80, true}, Shape{64, 64, false}}) {
    const std::string at = "T " + std::to_string(shape.T) + ", head " + std::to_string(shape.D) +
                           (shape.strided ? ", strided" : "") + ": ";
    std::vector<Tensor> qkv;
    for (uint64_t i = 0; i < 3; ++i) {
      auto t = normal({kBatch, shape.T, 3, shape.D}, torch::kBFloat16, seed + i).transpose(1, 2);
      qkv.push_back(shape.strided ? t : t.contiguous());
    }
    auto g = normal({kBatch, 3, shape.T, shape.D}, torch::kBFloat16, seed + 3);
    std::vector<Tensor> in64;
    for (const auto& t : qkv) in64.push_back(t.to(torch::kFloat64).requires_grad_(true));
    auto hidden = torch::ones({shape.T, shape.T}, torch::kBool).triu(1);
    auto scores = torch::matmul(in64[0], in64[1].transpose(-1, -2)) * scale;
    (torch::matmul(scores.masked_fill(hidden, -INFINITY).softmax(-1), in64[2]) * g.to(torch::kFloat64))
        .sum()
        .backward();
    auto [out, lse] = at::_scaled_dot_product_flash_attention_for_cpu(qkv[0], qkv[1], qkv[2], 0.0, true, {}, scale);
    using Backward = std::function<std::tuple<Tensor, Tensor, Tensor>()>;
    std::vector<std::pair<std::string, Backward>> backwards{
        {"float32 backward",
         [&] { return CausalFlashBfloat16::backward_float32(g, qkv[0], qkv[1], qkv[2], out, lse, scale); }},
        {"LibTorch's bfloat16 backward", [&] {
           return at::_scaled_dot_product_flash_attention_for_cpu_backward(g, qkv[0], qkv[1], qkv[2], out, lse, 0.0,
                                                                          true, {}, scale);
         }}};
    if (amx_attention_backward_available())
      backwards.push_back(
          {"AMX backward", [&] { return causal_attention_backward_amx(g, qkv[0], qkv[1], qkv[2], out, lse, scale); }});
    for (const auto& [name, backward] : backwards) {
      auto [dq, dk, dv] = backward();
      const Tensor got[] = {dq, dk, dv};
      const char* names[] = {" dq", " dk", " dv"};
      for (int i = 0; i < 3; ++i)
        results.push_back(mt::expect_close(at + name + names[i] + " relative RMS vs float64",
                                           mt::relative_rms(got[i].to(torch::kFloat64), in64[i].grad()), 1e-2));
    }
  }
  for (const auto& [name, open] : kernel_configs()) {
    auto reference = run<Reference>(with_kernels(open, "reference"), torch::kFloat64, T, seed);
    for (const char* kernels : {"fused", "reference"}) {
      auto got = run<Sdpa>(with_kernels(open, kernels), torch::kBFloat16, T, seed);
      double err = mt::relative_rms(got.y.to(torch::kFloat64), reference.y);
      for (size_t i = 0; i < got.grads.size(); ++i)
        err = std::max(err, mt::relative_rms(got.grads[i].to(torch::kFloat64), reference.grads[i]));
      results.push_back(mt::expect_close(name + " layer, sdpa bfloat16 kernels " + kernels +
                                             ": y and gradients, largest relative RMS vs float64",
                                         err, 5e-2));
    }
  }
  return mt::all_of(results);
}

// Linear scaling by f == positions / f (exact), and == HF's inv_freq / f for f = 2.
CheckResult rope_linear_scaling(uint64_t seed) {
  const int64_t T = 20;
  auto scaled = make<Reference>(R"({"n_heads": 4, "rope_scaling": {"type": "linear", "factor": 2.5}})");
  auto plain = make<Reference>(R"({"n_heads": 4})");
  auto params = mt::make_params(plain, torch::kFloat64, seed);
  auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
  auto pos = torch::arange(T, torch::kFloat64);
  std::vector<CheckResult> results{mt::expect_close(
      "layer with factor 2.5 vs unscaled layer at positions / 2.5",
      mt::scaled_max_error(scaled.forward_at(x, params, pos), plain.forward_at(x, params, pos / 2.5)), 0.0)};
  Rope rope = plain.config().rope;
  rope.scaling_factor = 2.0;
  auto [cos, sin] = rope.tables(pos, torch::kFloat64);
  auto inv_freq = torch::pow(rope.theta, -torch::arange(0, rope.rotary_dim, 2, torch::kFloat64) / double(rope.rotary_dim));
  auto hf_freqs = torch::outer(pos, inv_freq / 2.0);
  auto hf_angles = torch::cat({hf_freqs, hf_freqs}, -1);
  results.push_back(mt::expect_close("cos/sin with factor 2 vs HF inv_freq / 2",
                                     std::max(mt::scaled_max_error(cos, hf_angles.cos()),
                                              mt::scaled_max_error(sin, hf_angles.sin())),
                                     0.0));
  return mt::all_of(results);
}

// Token-by-token and chunked decode (chunks shorter and longer than W) equal
// the forward of `Core`, with the window much smaller than T.
template <class Core>
CheckResult decode_across_window(const std::string& name, uint64_t seed) {
  const int64_t T = 31;
  std::vector<CheckResult> results;
  for (const char* extra : {R"("window": 5, "flash_tile": 8)", R"("window": 1, "flash_tile": 8)"}) {
    auto m = make<Core>(gqa_config(extra));
    auto params = mt::make_params(m, torch::kFloat64, seed);
    auto x = normal({kBatch, T, kDModel}, torch::kFloat64, seed + 1);
    auto y = m.forward(x, params, {}).y;
    for (const std::vector<int64_t>& chunks : {std::vector<int64_t>(T, 1), std::vector<int64_t>{3, 1, 8, 2, 5, 12}}) {
      const std::string how = static_cast<int64_t>(chunks.size()) == T ? "token by token" : "chunks 3,1,8,2,5,12";
      results.push_back(mt::expect_close(name + " {" + extra + "} " + how,
                                         mt::scaled_max_error(mt::decode_in_chunks(m, x, chunks, params), y), 1e-10));
    }
  }
  return mt::all_of(results);
}

}  // namespace

std::vector<Check> family_checks() {
  return {
      {"gqa_equals_repeated_mha",
       [](uint64_t s) {
         return mt::all_of({gqa_is_repeated_mha<Reference>("reference", 0.0, s),
                            gqa_is_repeated_mha<Flash>("flash", 0.0, s), gqa_is_repeated_mha<Sdpa>("sdpa", 0.0, s)});
       }},
      {"window_at_least_T_equals_global",
       [](uint64_t s) {
         return mt::all_of({window_at_least_T_is_global<Reference>("reference", 0.0, s),
                            window_at_least_T_is_global<Flash>("flash", 0.0, s),
                            window_at_least_T_is_global<Sdpa>("sdpa", 1e-12, s)});
       }},
      {"rope_shift_invariance", rope_shift_invariance},
      {"rope_linear_scaling", rope_linear_scaling},
      {"fused_kernels_equal_reference", fused_kernels_equal_reference},
      {"sdpa_bfloat16_backward", sdpa_bfloat16_backward},
      {"decode_equals_forward_across_window",
       [](uint64_t s) {
         return mt::all_of({decode_across_window<Reference>("reference", s), decode_across_window<Flash>("flash", s),
                            decode_across_window<Sdpa>("sdpa", s)});
       }},
      {"flash_equals_reference", equals_reference<Flash>},
      {"sdpa_equals_reference", equals_reference<Sdpa>},
  };
}

}  // namespace mixlab::attention
