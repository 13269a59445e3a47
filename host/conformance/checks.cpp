#include "conformance/checks.hpp"

#include "runtime/host_api.hpp"
#include "runtime/instance.hpp"
#include "runtime/library.hpp"

#include <boost/dll/library_info.hpp>
#include <mixlab/testing.hpp>
#include <boost/dll/shared_library.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace mixlab::conformance {
namespace {

using torch::Tensor;

// Everything a check needs: the library, the implementation, an instance.
struct Fixture {
  std::shared_ptr<PluginLibrary> library;
  ImplRef ref;
  std::shared_ptr<PluginInstance> inst;
  const Subject& subject;

  explicit Fixture(const Subject& s) : subject(s) {
    library = PluginLibrary::load(s.file);
    for (const auto* impl : library->impls())
      if (impl->impl == s.impl) ref = ImplRef{library, impl, *Version::parse(impl->version)};
    if (!ref.impl) throw std::runtime_error(s.file.string() + " has no implementation \"" + s.impl + "\"");
    inst = make_instance(s.config_json, s.d_model);
  }

  std::shared_ptr<PluginInstance> make_instance(const std::string& config, int64_t d_model) const {
    return PluginInstance::create(ref, d_model, subject.max_seq_len, config);
  }

  bool has(uint64_t cap) const { return (ref.impl->caps & cap) != 0; }
  bool is_mixer() const { return ref.impl->family == MIXLAB_FAMILY_MIXER; }
  torch::Device device() const { return torch::Device(subject.device); }

  // Random values are drawn on the CPU in float64 and then moved, so every device
  // checks the same numbers.
  Tensor normal(at::IntArrayRef sizes, at::Generator& gen, double scale = 1.0) const {
    return (torch::empty(sizes, torch::kFloat64).normal_(0.0, 1.0, gen) * scale).to(device());
  }

  // Parameters from the specs, then perturbed so that no parameter is degenerate
  // (a zero-initialised output projection would hide every other gradient).
  std::vector<Tensor> params(torch::ScalarType dtype, uint64_t seed, const PluginInstance* which = nullptr) const {
    const PluginInstance& i = which ? *which : *inst;
    auto ps = i.init_params(torch::kFloat64, torch::kCPU, seed, 0.2);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 17);
    std::vector<Tensor> out;
    for (auto& p : ps) {
      torch::NoGradGuard ng;
      auto noise = torch::empty(p.sizes(), torch::kFloat64).normal_(0.0, 0.05, gen);
      out.push_back((p + noise).to(device(), dtype).requires_grad_(true));
    }
    return out;
  }

  Tensor input(int64_t batch, int64_t len, torch::ScalarType dtype, uint64_t seed, double scale = 1.0) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return normal({batch, len, subject.d_model}, gen, scale).to(dtype);
  }
};

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float64") return torch::kFloat64;
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw std::runtime_error("unknown dtype " + name);
}

uint64_t dtype_cap(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return MIXLAB_CAP_FLOAT64;
    case torch::kFloat32: return MIXLAB_CAP_FLOAT32;
    case torch::kBFloat16: return MIXLAB_CAP_BFLOAT16;
    default: return MIXLAB_CAP_FLOAT16;
  }
}

// max|a - b| / max(1, max|b|), the metric plugins' own checks use too; +inf on NaN or inf.
using testing::nan_as_inf;
using testing::scaled_max_error;

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         (a.numel() == 0 || torch::equal(a.detach(), b.detach()));
}

Outcome pass(std::string message, double error = 0.0, double tolerance = 0.0) {
  return Outcome{"", Verdict::Pass, error, tolerance, std::move(message)};
}
Outcome fail(std::string message, double error = 0.0, double tolerance = 0.0) {
  return Outcome{"", Verdict::Fail, error, tolerance, std::move(message)};
}
Outcome skip(std::string message) { return Outcome{"", Verdict::Skip, 0.0, 0.0, std::move(message)}; }
// A comparison's verdict: never a pass on a NaN or infinite error.
Outcome bounded(bool ok, const std::string& what, double error, double tolerance) {
  ok = ok && std::isfinite(error);
  return Outcome{"", ok ? Verdict::Pass : Verdict::Fail, error, tolerance,
                 testing::describe_error(what, "error", error, tolerance)};
}

std::vector<torch::ScalarType> supported_dtypes(const Fixture& f) {
  std::vector<torch::ScalarType> out;
  for (const auto& name : f.subject.dtypes) {
    auto t = parse_dtype(name);
    if (f.has(dtype_cap(t))) out.push_back(t);
  }
  return out;
}

// ------------------------------------------------------------ descriptor checks

Outcome check_handshake(const Fixture& f) {
  const auto& d = f.library->descriptor();
  const auto& impl = *f.ref.impl;
  std::ostringstream msg;
  msg << "ABI " << d.abi_major << "." << d.abi_minor << " (host " << MIXLAB_ABI_MAJOR << "." << MIXLAB_ABI_MINOR
      << "), " << impl.name << "/" << impl.impl << "@" << impl.version << ", family "
      << (impl.family == MIXLAB_FAMILY_MIXER ? "mixer" : "ffn");
  if (!(impl.caps & (MIXLAB_CAP_FLOAT32 | MIXLAB_CAP_FLOAT64 | MIXLAB_CAP_BFLOAT16 | MIXLAB_CAP_FLOAT16)))
    return fail(msg.str() + ": declares no dtype");
  if (!(impl.caps & (MIXLAB_CAP_CPU | MIXLAB_CAP_CUDA))) return fail(msg.str() + ": declares no device");
  if (impl.causality_bound < 0 || impl.causality_bound > 1e-2)
    return fail(msg.str() + ": causality_bound " + std::to_string(impl.causality_bound) + " outside [0, 1e-2]");
  // A host of another major must get the version fields and no implementations,
  // without changing the answer this host holds (the entry point is pure).
  auto entry = boost::dll::shared_library(f.library->path())
                   .get<const mixlab_library*(uint32_t, uint32_t, const mixlab_host_api*)>(MIXLAB_ENTRY_SYMBOL);
  const mixlab_library held = d;
  const mixlab_library* other = entry(MIXLAB_ABI_MAJOR + 1, 0, nullptr);
  if (other && other->n_impls != 0)
    return fail(msg.str() + ": offers implementations to a host of ABI major " + std::to_string(MIXLAB_ABI_MAJOR + 1));
  if (d.n_impls != held.n_impls || d.impls != held.impls || d.n_checks != held.n_checks ||
      d.check_names != held.check_names || d.run_check != held.run_check || d.abi_major != held.abi_major)
    return fail(msg.str() + ": answering a host of ABI major " + std::to_string(MIXLAB_ABI_MAJOR + 1) +
                " changed the descriptor returned earlier; " MIXLAB_ENTRY_SYMBOL
                " must return an immutable descriptor per answer (use MIXLAB_PLUGIN)");
  return pass(msg.str() + "; answers to another ABI major leave it unchanged");
}

Outcome check_binary_hygiene(const Fixture& f) {
  boost::dll::library_info info(f.library->path());
  std::vector<std::string> extra;
  for (const auto& s : info.symbols())
    if (s != MIXLAB_ENTRY_SYMBOL) extra.push_back(s);
  if (extra.empty()) return pass("exports only " MIXLAB_ENTRY_SYMBOL);
  std::string list;
  for (size_t i = 0; i < extra.size() && i < 5; ++i) list += (i ? ", " : "") + extra[i];
  return fail(std::to_string(extra.size()) + " symbols exported besides " MIXLAB_ENTRY_SYMBOL " (e.g. " + list +
                  "): build with -fvisibility=hidden and the SDK's version script (mixlab_add_plugin)",
              static_cast<double>(extra.size()), 0);
}

Outcome check_build_tag(const Fixture& f) {
  std::string tag = f.library->descriptor().build_tag;
  if (tag == host_build_tag()) return pass("\"" + tag + "\"");
  return fail("plugin \"" + tag + "\" != host \"" + host_build_tag() + "\"");
}

Outcome check_param_specs(const Fixture& f) {
  const auto& a = f.inst->params();
  auto again = f.make_instance(f.subject.config_json, f.subject.d_model);
  const auto& b = again->params();
  if (a.size() != b.size()) return fail("two instances with one config declare different parameter counts");
  std::set<std::string> names;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name.empty()) return fail("parameter " + std::to_string(i) + " has no name");
    if (!names.insert(a[i].name).second) return fail("duplicate parameter name " + a[i].name);
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].init != b[i].init || a[i].a != b[i].a ||
        a[i].b != b[i].b || a[i].flags != b[i].flags)
      return fail("parameter " + a[i].name + " differs between two instances with one config");
    for (auto d : a[i].shape)
      if (d < 1) return fail("parameter " + a[i].name + " has a non-positive dimension");
    if (a[i].init < MIXLAB_INIT_ZEROS || a[i].init > MIXLAB_INIT_PLUGIN)
      return fail("parameter " + a[i].name + " has unknown init " + std::to_string(a[i].init));
    if (a[i].init == MIXLAB_INIT_UNIFORM && !(a[i].a < a[i].b))
      return fail("parameter " + a[i].name + ": uniform init needs a < b");
  }
  // Consistent with the config: the parameters follow d_model.
  auto wider = f.make_instance(f.subject.config_json, f.subject.d_model * 2);
  if (wider->n_parameters() <= f.inst->n_parameters())
    return fail("doubling d_model did not increase the parameter count (" + std::to_string(f.inst->n_parameters()) +
                " -> " + std::to_string(wider->n_parameters()) + ")");
  // Two inits with one seed are identical (the host owns initialisation, plugins their custom inits).
  auto p1 = f.inst->init_params(torch::kFloat64, torch::kCPU, 7, 0.02);
  auto p2 = again->init_params(torch::kFloat64, torch::kCPU, 7, 0.02);
  for (size_t i = 0; i < p1.size(); ++i)
    if (!bitwise_equal(p1[i], p2[i])) return fail("initialisation of " + a[i].name + " is not deterministic");
  return pass(std::to_string(a.size()) + " parameters, " + std::to_string(f.inst->n_parameters()) +
              " values, unique, deterministic, follow d_model");
}

// ------------------------------------------------------------ forward checks

Outcome check_shapes(const Fixture& f) {
  auto dtypes = supported_dtypes(f);
  if (dtypes.empty()) return skip("none of the requested dtypes is declared");
  int n = 0;
  for (auto dtype : dtypes) {
    auto params = f.params(dtype, f.subject.seed);
    for (int64_t b : {1, 3})
      for (int64_t t : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{16}, f.subject.max_seq_len}) {
        torch::NoGradGuard ng;
        auto x = f.input(b, t, dtype, f.subject.seed + t);
        auto r = f.inst->forward(x, params);
        std::string where = std::string(c10::toString(dtype)) + " B=" + std::to_string(b) + " T=" + std::to_string(t);
        if (r.y.sizes() != x.sizes()) return fail(where + ": y has shape " + c10::str(r.y.sizes()));
        if (r.y.scalar_type() != dtype) return fail(where + ": y has dtype " + c10::toString(r.y.scalar_type()));
        if (!torch::isfinite(r.y).all().item<bool>()) return fail(where + ": y has NaN or Inf");
        for (size_t i = 0; i < r.statistics.size(); ++i)
          if (!torch::isfinite(r.statistics[i]).all().item<bool>())
            return fail(where + ": statistic " + std::to_string(i) + " has NaN or Inf");
        ++n;
      }
  }
  return pass(std::to_string(n) + " shape/dtype combinations, T in {1, 2, 7, 16, " +
              std::to_string(f.subject.max_seq_len) + "}, B in {1, 3}");
}

Outcome check_no_mutation(const Fixture& f) {
  auto dtype = supported_dtypes(f).empty() ? torch::kFloat32 : supported_dtypes(f).front();
  auto params = f.params(dtype, f.subject.seed);
  auto x = f.input(2, 9, dtype, f.subject.seed).requires_grad_(true);
  std::vector<Tensor> before;
  for (const auto& p : params) before.push_back(p.detach().clone());
  auto x_before = x.detach().clone();
  auto r = f.inst->forward(x, params, {true, 5});
  if (r.y.data_ptr() == x.data_ptr()) return fail("y aliases x");
  if (!bitwise_equal(x.detach(), x_before)) return fail("forward modified its input x");
  for (size_t i = 0; i < params.size(); ++i)
    if (!bitwise_equal(params[i].detach(), before[i]))
      return fail("forward modified parameter " + f.inst->params()[i].name);
  auto loss = (r.y * torch::randn_like(r.y)).sum();
  for (const auto& a : r.aux_losses) loss = loss + a;
  loss.backward();
  if (!bitwise_equal(x.detach(), x_before)) return fail("backward modified the input x");
  for (size_t i = 0; i < params.size(); ++i)
    if (!bitwise_equal(params[i].detach(), before[i]))
      return fail("backward modified parameter " + f.inst->params()[i].name);
  return pass("x and every parameter bitwise unchanged by forward and backward; y does not alias x");
}

Outcome check_finite(const Fixture& f) {
  auto dtypes = supported_dtypes(f);
  if (dtypes.empty()) return skip("none of the requested dtypes is declared");
  for (auto dtype : dtypes) {
    auto params = f.params(dtype, f.subject.seed);
    auto zero = torch::zeros({2, 13, f.subject.d_model}, torch::TensorOptions(dtype).device(f.device()));
    std::map<std::string, Tensor> inputs{
        {"random", f.input(2, 13, dtype, 3)}, {"large (x100)", f.input(2, 13, dtype, 4, 100.0)}, {"zero", zero}};
    for (auto& [kind, x] : inputs) {
      x.requires_grad_(true);
      auto r = f.inst->forward(x, params, {true, 3});
      std::string where = std::string(c10::toString(dtype)) + ", " + kind + " input";
      if (!torch::isfinite(r.y).all().item<bool>()) return fail(where + ": y has NaN or Inf");
      auto loss = r.y.to(torch::kFloat64).square().mean();
      for (const auto& a : r.aux_losses) loss = loss + a;
      loss.backward();
      if (!torch::isfinite(x.grad()).all().item<bool>()) return fail(where + ": grad x has NaN or Inf");
      for (size_t i = 0; i < params.size(); ++i) {
        auto g = params[i].grad();
        if (g.defined() && !torch::isfinite(g).all().item<bool>())
          return fail(where + ": grad of " + f.inst->params()[i].name + " has NaN or Inf");
        params[i].mutable_grad() = Tensor();
      }
    }
  }
  return pass("outputs and gradients finite for random, large (x100) and zero inputs");
}

// L(x, params) = <w, y> + sum_i c_i aux_i, for a fixed random w and c.
struct Objective {
  Tensor w;
  Tensor c;
  Tensor operator()(const ForwardResult& r) const {
    auto loss = (r.y * w).sum();
    for (size_t i = 0; i < r.aux_losses.size(); ++i) loss = loss + c[static_cast<long>(i)] * r.aux_losses[i];
    return loss;
  }
};

Outcome check_gradients(const Fixture& f) {
  if (!f.has(MIXLAB_CAP_FLOAT64)) return skip("float64 not declared; finite differences need it");
  const double eps = 1e-6, tol = 1e-6;
  auto params = f.params(torch::kFloat64, f.subject.seed);
  auto x = f.input(2, 5, torch::kFloat64, f.subject.seed).requires_grad_(true);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(f.subject.seed + 99);
  Objective obj{f.normal({2, 5, f.subject.d_model}, gen), f.normal({static_cast<long>(f.inst->n_aux()) + 1}, gen)};
  CallOptions opts{false, 11};
  obj(f.inst->forward(x, params, opts)).backward();

  auto eval = [&](const Tensor& xx, const std::vector<Tensor>& pp) {
    torch::NoGradGuard ng;
    return obj(f.inst->forward(xx, pp, opts)).item<double>();
  };
  // One directional derivative per tensor: (L(v + e d) - L(v - e d)) / 2e = <grad, d>.
  double worst = 0.0;
  std::string worst_name = "x";
  auto directional = [&](const std::string& name, const Tensor& grad, const std::function<double(double)>& at) {
    double fd = (at(eps) - at(-eps)) / (2 * eps);
    double an = grad.defined() ? grad.item<double>() : 0.0;
    double err = nan_as_inf(std::abs(fd - an) / std::max(1.0, std::abs(fd)));
    if (err > worst) worst = err, worst_name = name;
  };
  auto dx = f.normal(x.sizes(), gen);
  directional("x", (x.grad() * dx).sum(), [&](double e) { return eval(x.detach() + e * dx, params); });
  std::vector<std::string> no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& name = f.inst->params()[i].name;
    auto g = params[i].grad();
    if (!g.defined() || g.abs().max().item<double>() == 0.0) no_grad.push_back(name);
    auto d = f.normal(params[i].sizes(), gen);
    directional(name, g.defined() ? (g * d).sum() : Tensor(), [&](double e) {
      std::vector<Tensor> pp;
      for (size_t j = 0; j < params.size(); ++j) pp.push_back(j == i ? params[j].detach() + e * d : params[j].detach());
      return eval(x.detach(), pp);
    });
  }
  if (!no_grad.empty()) {
    std::string list;
    for (const auto& n : no_grad) list += (list.empty() ? "" : ", ") + n;
    return fail("parameters with no gradient: " + list);
  }
  return bounded(worst <= tol, "float64 central differences (eps 1e-6) vs backward, worst " + worst_name, worst, tol);
}

// ------------------------------------------------------------ semantics

Outcome check_batch_independence(const Fixture& f) {
  auto params = f.params(torch::kFloat64, f.subject.seed);
  auto x = f.input(3, 11, torch::kFloat64, f.subject.seed);
  torch::NoGradGuard ng;
  auto y = f.inst->forward(x, params).y;
  double worst = 0.0;
  for (int64_t b = 0; b < 3; ++b) {
    auto yb = f.inst->forward(x.slice(0, b, b + 1).contiguous(), params).y;
    worst = std::max(worst, scaled_max_error(yb, y.slice(0, b, b + 1)));
  }
  const double tol = 1e-10;
  return bounded(worst <= tol, "each batch row alone vs in a batch of 3 (float64)", worst, tol);
}

Outcome check_causality(const Fixture& f) {
  auto params = f.params(torch::kFloat64, f.subject.seed);
  const int64_t T = std::min<int64_t>(f.subject.max_seq_len, 24);
  auto x = f.input(2, T, torch::kFloat64, f.subject.seed);
  torch::NoGradGuard ng;
  auto y = f.inst->forward(x, params).y;
  if (!testing::all_finite(y)) return fail("y has NaN or infinity: perturbations cannot be compared");
  double bound = f.ref.impl->causality_bound;
  double scale = std::max(1.0, y.abs().max().item<double>());
  double worst = 0.0;
  if (f.is_mixer()) {
    for (int64_t t0 : {1L, T / 2, T - 1}) {
      auto xp = x.clone();
      xp.slice(1, t0, T).add_(torch::randn_like(xp.slice(1, t0, T)) * 3.0);
      auto yp = f.inst->forward(xp, params).y;
      auto before = y.slice(1, 0, t0), after = yp.slice(1, 0, t0);
      if (bound == 0.0 && !bitwise_equal(before, after))
        return fail("perturbing positions >= " + std::to_string(t0) + " changed an earlier output by " +
                        std::to_string((before - after).abs().max().item<double>()) +
                        " (declared exact causality)",
                    (before - after).abs().max().item<double>() / scale, 0.0);
      worst = std::max(worst, nan_as_inf((before - after).abs().max().item<double>() / scale));
    }
    return bounded(worst <= bound, bound == 0.0 ? "outputs before a perturbation bitwise unchanged (exact)"
                                                : "outputs before a perturbation, relative to max|y|",
                   worst, bound);
  }
  // An FFN is position-wise: perturbing one position leaves every other one unchanged.
  for (int64_t t0 : {0L, T / 2, T - 1}) {
    auto xp = x.clone();
    xp.select(1, t0).add_(torch::randn_like(xp.select(1, t0)) * 3.0);
    auto yp = f.inst->forward(xp, params).y;
    auto mask = torch::ones({T}, torch::TensorOptions(torch::kBool).device(f.device()));
    mask[t0] = false;
    worst = std::max(worst, scaled_max_error(yp.index({torch::indexing::Slice(), mask}),
                                         y.index({torch::indexing::Slice(), mask})));
  }
  return bounded(worst <= bound, "FFN is position-wise: other positions unchanged", worst, bound);
}

Outcome check_decode(const Fixture& f) {
  if (!f.inst->can_decode()) return skip("decode not declared");
  auto params = f.params(torch::kFloat64, f.subject.seed);
  const int64_t T = std::min<int64_t>(f.subject.max_seq_len, 21);
  auto x = f.input(2, T, torch::kFloat64, f.subject.seed);
  torch::NoGradGuard ng;
  auto y = f.inst->forward(x, params).y;
  std::vector<Tensor> pd;
  for (const auto& p : params) pd.push_back(p.detach());
  // Token by token.
  auto state = f.inst->new_state(2, torch::kFloat64, f.device());
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < T; ++t) steps.push_back(state->step(x.slice(1, t, t + 1).contiguous(), pd));
  double err_steps = scaled_max_error(torch::cat(steps, 1), y);
  // Prefill a prefix, then continue in uneven chunks.
  auto state2 = f.inst->new_state(2, torch::kFloat64, f.device());
  std::vector<Tensor> chunks;
  for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{0, T / 3}, {T / 3, T / 3 + 1}, {T / 3 + 1, T}})
    if (b > a) chunks.push_back(state2->step(x.slice(1, a, b).contiguous(), pd));
  double err_chunks = scaled_max_error(torch::cat(chunks, 1), y);
  const double tol = 1e-10;
  double worst = std::max(err_steps, err_chunks);
  std::ostringstream msg;
  msg << "float64, T=" << T << ": step-by-step " << err_steps << ", prefill+chunks " << err_chunks;
  return bounded(worst <= tol, msg.str(), worst, tol);
}

Outcome check_determinism(const Fixture& f) {
  if (!f.has(MIXLAB_CAP_DETERMINISTIC)) return skip("deterministic not declared");
  auto dtype = supported_dtypes(f).empty() ? torch::kFloat32 : supported_dtypes(f).back();
  auto run = [&] {
    auto params = f.params(dtype, f.subject.seed);
    auto x = f.input(2, 12, dtype, f.subject.seed).requires_grad_(true);
    auto r = f.inst->forward(x, params, {true, 42});
    auto loss = r.y.to(torch::kFloat64).square().sum();
    for (const auto& a : r.aux_losses) loss = loss + a;
    loss.backward();
    std::vector<Tensor> out{r.y.detach(), x.grad()};
    for (auto& p : params) out.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
    return out;
  };
  auto a = run(), b = run();
  for (const auto& t : a)
    if (!testing::all_finite(t)) return fail("outputs or gradients hold NaN or infinity");
  for (size_t i = 0; i < a.size(); ++i)
    if (!bitwise_equal(a[i], b[i]))
      return fail(std::string(i == 0 ? "outputs" : i == 1 ? "grad x" : "grad " + f.inst->params()[i - 2].name) +
                  " differ between two runs with one seed");
  return pass(std::string(c10::toString(dtype)) + ": outputs and gradients bitwise identical across two runs");
}

Outcome check_threads(const Fixture& f) {
  auto other = f.make_instance(f.subject.config_json, f.subject.d_model);
  auto dtype = torch::kFloat64;
  auto run = [&](PluginInstance& inst, uint64_t seed) {
    auto params = f.params(dtype, seed, &inst);
    auto x = f.input(2, 10, dtype, seed).requires_grad_(true);
    auto r = inst.forward(x, params, {false, seed});
    r.y.square().sum().backward();
    return std::vector<Tensor>{r.y.detach(), x.grad()};
  };
  auto ref_a = run(*f.inst, 1), ref_b = run(*other, 2);
  std::vector<Tensor> got_a, got_b;
  std::string error;
  std::mutex m;
  auto guarded = [&](std::function<void()> fn) {
    return [&, fn] {
      try {
        fn();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(m);
        error = e.what();
      }
    };
  };
  for (int round = 0; round < 3; ++round) {
    std::thread ta(guarded([&] { got_a = run(*f.inst, 1); }));
    std::thread tb(guarded([&] { got_b = run(*other, 2); }));
    ta.join();
    tb.join();
    if (!error.empty()) return fail("concurrent use threw: " + error);
    double err = 0;
    for (size_t i = 0; i < 2; ++i) err = std::max({err, scaled_max_error(got_a[i], ref_a[i]), scaled_max_error(got_b[i], ref_b[i])});
    if (!(err <= 1e-12))
      return bounded(false, "results on two threads vs sequential ones (forward and grad x)", err, 1e-12);
  }
  return pass("two instances, forward and backward on two threads at once, 3 rounds: equal to sequential");
}

// ------------------------------------------------------------ robustness

Outcome check_bad_config(const Fixture& f) {
  std::vector<std::pair<std::string, std::string>> bad{{"not JSON", "{n_heads: "},
                                                       {"a JSON array", "[1, 2]"},
                                                       {"an unknown key", R"({"definitely_not_a_key": 1})"}};
  // Every key of the subject config, later set to values of the wrong type or range.
  std::vector<std::string> keys;
  auto subject_config = nlohmann::json::parse(f.subject.config_json);
  for (const auto& item : subject_config.items()) keys.push_back(item.key());
  int rejected = 0, accepted = 0;
  for (const auto& [what, config] : bad) {
    try {
      f.make_instance(config, f.subject.d_model);
      return fail("accepted " + what + ": " + config);
    } catch (const PluginError& e) {
      if (e.code() != MIXLAB_INVALID_ARGUMENT)
        return fail(what + " gave code " + code_name(e.code()) + ", expected invalid argument: " + e.what());
      ++rejected;
    }
  }
  for (int64_t d : {0L, -4L}) {
    try {
      f.make_instance(f.subject.config_json, d);
      return fail("accepted d_model = " + std::to_string(d));
    } catch (const PluginError&) {
      ++rejected;
    }
  }
  for (const auto& key : keys)
    for (const char* value : {"-1", "0", "\"x\"", "1e300", "null", "[]"}) {
      std::string config = "{\"" + key + "\": " + value + "}";
      try {
        f.make_instance(config, f.subject.d_model);
        ++accepted;
      } catch (const PluginError&) {
        ++rejected;
      }
    }
  return pass(std::to_string(rejected) + " malformed or out-of-range configs rejected with a status, " +
              std::to_string(accepted) + " fuzzed values accepted, none crashed");
}

long resident_kib() {
  long pages_total = 0, pages_resident = 0;
  FILE* fp = std::fopen("/proc/self/statm", "r");
  if (fp) {
    if (std::fscanf(fp, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(fp);
  }
  return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

Outcome check_lifecycle(const Fixture& f) {
  auto cycle = [&] {
    auto inst = f.make_instance(f.subject.config_json, f.subject.d_model);
    auto params = f.params(torch::kFloat32, 1, inst.get());
    auto x = f.input(1, 8, torch::kFloat32, 1).requires_grad_(true);
    auto r = inst->forward(x, params);
    r.y.sum().backward();
    if (inst->can_decode()) {
      std::vector<Tensor> pd;
      for (const auto& p : params) pd.push_back(p.detach());
      inst->new_state(1, torch::kFloat32, f.device())->step(x.detach().slice(1, 0, 1).contiguous(), pd);
    }
  };
  if (!f.has(MIXLAB_CAP_FLOAT32)) return skip("float32 not declared");
  for (int i = 0; i < 20; ++i) cycle();
  long before = resident_kib();
  for (int i = 0; i < 100; ++i) cycle();
  long growth = resident_kib() - before;
  const long tol_kib = 4096;
  return bounded(growth <= tol_kib, "resident memory growth over 100 create/forward/backward/destroy cycles (KiB)",
                 static_cast<double>(growth), static_cast<double>(tol_kib));
}

Outcome check_family(const Fixture& f, const std::string& name) {
  const auto& d = f.library->descriptor();
  for (int32_t i = 0; i < d.n_checks; ++i) {
    if (name != d.check_names[i]) continue;
    mixlab_check_result r{};
    r.struct_size = sizeof(r);
    check_status(d.run_check(i, f.subject.seed, &r), "check " + name);
    if (r.passed && !std::isfinite(r.error))
      return fail(std::string("reported a pass with a non-finite error: ") + r.message, r.error, r.tolerance);
    return Outcome{"", r.passed ? Verdict::Pass : Verdict::Fail, r.error, r.tolerance, r.message};
  }
  return fail("the library has no check named " + name);
}

using CheckFn = Outcome (*)(const Fixture&);
struct GenericCheck {
  std::string name;
  CheckFn fn;
  bool on_device;  // runs tensors on --device, so it needs the implementation to declare that device
};
const std::vector<GenericCheck>& generic_checks() {
  static const std::vector<GenericCheck> checks{
      {"handshake", check_handshake, false},
      {"binary_hygiene", check_binary_hygiene, false},
      {"build_tag", check_build_tag, false},
      {"param_specs", check_param_specs, false},
      {"shapes_and_dtypes", check_shapes, true},
      {"no_mutation_no_alias", check_no_mutation, true},
      {"finite_outputs", check_finite, true},
      {"gradients_fd", check_gradients, true},
      {"batch_independence", check_batch_independence, true},
      {"causality", check_causality, true},
      {"decode_equals_forward", check_decode, true},
      {"determinism", check_determinism, true},
      {"two_threads", check_threads, true},
      {"bad_config", check_bad_config, false},
      {"lifecycle_memory", check_lifecycle, true},
  };
  return checks;
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Pass: return "PASS";
    case Verdict::Fail: return "FAIL";
    default: return "SKIP";
  }
}

std::vector<std::string> check_names(const Subject& subject, bool with_family) {
  std::vector<std::string> names;
  for (const auto& check : generic_checks()) names.push_back(check.name);
  if (with_family) {
    auto lib = PluginLibrary::load(subject.file);
    const auto& d = lib->descriptor();
    for (int32_t i = 0; i < d.n_checks; ++i) names.push_back(std::string("family:") + d.check_names[i]);
  }
  return names;
}

Outcome run_check(const Subject& subject, const std::string& name) {
  auto start = std::chrono::steady_clock::now();
  Outcome out;
  try {
    Fixture fixture(subject);
    torch::manual_seed(subject.seed);
    if (name.rfind("family:", 0) == 0) {
      out = check_family(fixture, name.substr(7));
    } else {
      out = fail("no such check");
      const bool cuda = fixture.device().is_cuda();
      for (const auto& check : generic_checks())
        if (check.name == name)
          out = check.on_device && !fixture.has(cuda ? MIXLAB_CAP_CUDA : MIXLAB_CAP_CPU)
                    ? skip(subject.device + " not declared by this implementation")
                    : check.fn(fixture);
    }
  } catch (const std::exception& e) {
    out = fail(std::string("error: ") + e.what());
  }
  out.check = name;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace mixlab::conformance
