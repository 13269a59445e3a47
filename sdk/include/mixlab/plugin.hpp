// mixlab/plugin.hpp -- header-only C++ helper for writing a plugin with LibTorch.
//
// An author writes one class per implementation, derived from mixlab::Module,
// and exports the library with one macro:
//
//   class Mlp : public mixlab::Module {
//    public:
//     static mixlab::ImplInfo info() {
//       return {MIXLAB_FAMILY_FFN, "mlp", "default", "1.0.0", "dense FFN"};
//     }
//     explicit Mlp(const mixlab::CreateArgs& args) : d_(args.d_model) {
//       hidden_ = args.config.get<int64_t>("hidden", 4 * d_);
//     }
//     std::vector<mixlab::ParamSpec> params() const override {
//       return {mixlab::ParamSpec::normal("w_in", {hidden_, d_}, "input projection"), ...};
//     }
//     mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p,
//                            const mixlab::Call&) const override {
//       return {torch::linear(torch::gelu(torch::linear(x, p["w_in"])), p["w_out"])};
//     }
//   };
//   MIXLAB_PLUGIN(mixlab::impl<Mlp>())
//
// Backward is derived with LibTorch autograd from forward (an author may
// override backward() and set MIXLAB_CAP_CUSTOM_BACKWARD instead). Every C
// entry point catches every exception and turns it into a status.
#pragma once

#include <ATen/DLConvertor.h>  // first: its dlpack.h guard wins over <dlpack/dlpack.h>
#include <torch/torch.h>

#include <mixlab/edit_distance.hpp>
#include <mixlab/plugin.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#define MIXLAB_STRINGIFY_(x) #x
#define MIXLAB_STRINGIFY(x) MIXLAB_STRINGIFY_(x)
// The host refuses a library whose tag differs from its own: parameters and
// tensors are LibTorch objects on both sides of the boundary.
#define MIXLAB_BUILD_TAG                                                      \
  "torch=" MIXLAB_STRINGIFY(TORCH_VERSION_MAJOR) "." MIXLAB_STRINGIFY(        \
      TORCH_VERSION_MINOR) " cxx11abi=" MIXLAB_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)

namespace mixlab {

// ---------------------------------------------------------------- errors

class Error : public std::runtime_error {
 public:
  Error(mixlab_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  mixlab_code code() const { return code_; }

 private:
  mixlab_code code_;
};

// A bad config value; the message starts with the key so the host can point
// at the line of the experiment file.
inline Error config_error(const std::string& key, const std::string& message) {
  return Error(MIXLAB_INVALID_ARGUMENT, key + ": " + message);
}

// ---------------------------------------------------------------- config

// The layer's plugin table. Every key read is remembered; finish() rejects the
// rest, so a typo is an error and not a silently ignored setting.
class Config {
 public:
  explicit Config(const std::string& json_text) {
    try {
      json_ = nlohmann::json::parse(json_text.empty() ? "{}" : json_text);
    } catch (const std::exception& e) {
      throw Error(MIXLAB_INVALID_ARGUMENT, std::string("config is not valid JSON: ") + e.what());
    }
    if (!json_.is_object()) throw Error(MIXLAB_INVALID_ARGUMENT, "config must be a JSON object");
  }

  bool has(const std::string& key) const { return json_.contains(key); }

  template <class T>
  T get(const std::string& key, const T& fallback) const {
    known_.insert(key);
    if (!json_.contains(key)) return fallback;
    return convert<T>(key);
  }

  template <class T>
  std::optional<T> get_optional(const std::string& key) const {
    known_.insert(key);
    if (!json_.contains(key)) return std::nullopt;
    return convert<T>(key);
  }

  template <class T>
  T require(const std::string& key) const {
    known_.insert(key);
    if (!json_.contains(key)) throw config_error(key, "is required");
    return convert<T>(key);
  }

  // An integer >= lo.
  int64_t get_int(const std::string& key, int64_t fallback, int64_t lo = 1) const {
    int64_t v = get<int64_t>(key, fallback);
    if (v < lo) throw config_error(key, "must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
    return v;
  }

  // One of a fixed set of strings.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed) const {
    std::string v = get<std::string>(key, fallback);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw config_error(key, "must be one of {" + list + "}, got \"" + v + "\"");
    }
    return v;
  }

  // Call after reading every key: an unknown key is an error with a suggestion.
  void finish() const {
    for (auto it = json_.begin(); it != json_.end(); ++it) {
      if (known_.count(it.key())) continue;
      std::string best;
      size_t best_d = 3;
      for (const auto& k : known_) {
        size_t d = edit_distance(it.key(), k);
        if (d < best_d) best_d = d, best = k;
      }
      std::string known_list;
      for (const auto& k : known_) known_list += (known_list.empty() ? "" : ", ") + k;
      throw config_error(it.key(), "unknown key" + (best.empty() ? "" : " (did you mean \"" + best + "\"?)") +
                                       "; known keys: " + known_list);
    }
  }

  const nlohmann::json& json() const { return json_; }

 private:
  template <class T>
  T convert(const std::string& key) const {
    const auto& v = json_.at(key);
    try {
      if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, int>) {
        if (!v.is_number_integer()) throw std::runtime_error("");
      } else if constexpr (std::is_same_v<T, double>) {
        if (!v.is_number()) throw std::runtime_error("");
      } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::runtime_error("");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) throw std::runtime_error("");
      }
      return v.get<T>();
    } catch (const std::exception&) {
      throw config_error(key, std::string("expected ") + type_name<T>() + ", got " + v.dump());
    }
  }

  template <class T>
  static const char* type_name() {
    if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, int>) return "an integer";
    else if constexpr (std::is_same_v<T, double>) return "a number";
    else if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else return "a value of another type";
  }

  nlohmann::json json_;
  mutable std::set<std::string> known_;
};

struct CreateArgs {
  int64_t d_model;
  int64_t max_seq_len;
  Config config;
};

// ---------------------------------------------------------------- specs

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string description;
  mixlab_init init = MIXLAB_INIT_NORMAL;
  double a = 0.0, b = 0.0;
  uint32_t flags = 0;

  static ParamSpec normal(std::string name, std::vector<int64_t> shape, std::string desc, double std = 0.0) {
    return {std::move(name), std::move(shape), std::move(desc), MIXLAB_INIT_NORMAL, 0.0, std};
  }
  static ParamSpec uniform(std::string name, std::vector<int64_t> shape, std::string desc, double lo, double hi) {
    return {std::move(name), std::move(shape), std::move(desc), MIXLAB_INIT_UNIFORM, lo, hi};
  }
  static ParamSpec zeros(std::string name, std::vector<int64_t> shape, std::string desc) {
    return {std::move(name), std::move(shape), std::move(desc), MIXLAB_INIT_ZEROS, 0.0, 0.0,
            MIXLAB_PARAM_NO_WEIGHT_DECAY};
  }
  static ParamSpec ones(std::string name, std::vector<int64_t> shape, std::string desc) {
    return {std::move(name), std::move(shape), std::move(desc), MIXLAB_INIT_ONES, 0.0, 0.0,
            MIXLAB_PARAM_NO_WEIGHT_DECAY};
  }
  // Initialised by Module::init_param.
  static ParamSpec custom(std::string name, std::vector<int64_t> shape, std::string desc, uint32_t flags = 0) {
    return {std::move(name), std::move(shape), std::move(desc), MIXLAB_INIT_PLUGIN, 0.0, 0.0, flags};
  }
  ParamSpec& no_weight_decay() {
    flags |= MIXLAB_PARAM_NO_WEIGHT_DECAY;
    return *this;
  }
};

struct SideSpec {
  std::string name;
  mixlab_side_kind kind;
  std::vector<int64_t> shape;
  double coefficient = 0.0;
  std::string description;

  static SideSpec aux_loss(std::string name, double coefficient, std::string desc) {
    return {std::move(name), MIXLAB_SIDE_AUX_LOSS, {}, coefficient, std::move(desc)};
  }
  static SideSpec statistic(std::string name, std::vector<int64_t> shape, std::string desc) {
    return {std::move(name), MIXLAB_SIDE_STATISTIC, std::move(shape), 0.0, std::move(desc)};
  }
  // Per token: forward returns (B, T, shape...). Hosts older than ABI 1.1 never see it.
  static SideSpec token_statistic(std::string name, std::vector<int64_t> shape, std::string desc) {
    return {std::move(name), MIXLAB_SIDE_TOKEN_STATISTIC, std::move(shape), 0.0, std::move(desc)};
  }
};

// Parameters by name, in spec order.
class Params {
 public:
  Params() = default;
  Params(std::vector<std::string> names, std::vector<torch::Tensor> tensors)
      : names_(std::move(names)), tensors_(std::move(tensors)) {}
  const torch::Tensor& operator[](const std::string& name) const {
    for (size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) return tensors_[i];
    throw Error(MIXLAB_INTERNAL, "no parameter named " + name);
  }
  const std::vector<torch::Tensor>& tensors() const { return tensors_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::vector<torch::Tensor> tensors_;
};

struct Call {
  bool training = false;
  uint64_t seed = 0;
};

// What forward returns: y and one tensor per side spec (in the order sides() declares them).
struct Output {
  torch::Tensor y;
  std::vector<torch::Tensor> side;
};

struct Grads {
  torch::Tensor x;                   // may be undefined when not needed
  std::vector<torch::Tensor> params; // spec order; undefined entries mean zero
};

struct Cost {
  double active_params = -1;  // < 0: all parameters
  double forward_flops = -1;  // < 0: 2 * active_params
  double state_bytes = 0;
  bool state_grows = false;
  // ABI 1.2, attention-like mixers: the same-shape standard attention explain
  // compares the cache with (0: none). See mixlab_cost.
  double kv_head_bytes_per_token = 0;
  int32_t attention_heads = 0;
};

// A decode state; derive and keep what step() needs.
struct State {
  virtual ~State() = default;
};

struct ImplInfo {
  mixlab_family family;
  const char* name;
  const char* impl;
  const char* version;
  const char* description;
  uint64_t caps = MIXLAB_CAP_CPU | MIXLAB_CAP_CUDA | MIXLAB_CAP_FLOAT32 | MIXLAB_CAP_FLOAT64 |
                  MIXLAB_CAP_BFLOAT16 | MIXLAB_CAP_DETERMINISTIC;
  double causality_bound = 0.0;
};

// ---------------------------------------------------------------- module

class Module {
 public:
  virtual ~Module() = default;
  virtual std::vector<ParamSpec> params() const = 0;
  virtual std::vector<SideSpec> sides() const { return {}; }
  virtual Output forward(const torch::Tensor& x, const Params& p, const Call& call) const = 0;

  // For MIXLAB_INIT_PLUGIN parameters: fill `param` in place (no grad) using `gen`.
  virtual void init_param(const std::string& name, torch::Tensor& param, at::Generator& gen) const {
    throw Error(MIXLAB_UNIMPLEMENTED, "init_param not implemented for " + name);
  }
  // Only with MIXLAB_CAP_CUSTOM_BACKWARD: gradients of <grad_y, y> + sum grad_aux * aux.
  virtual Grads backward(const torch::Tensor& x, const Params& p, const torch::Tensor& grad_y,
                         const std::vector<torch::Tensor>& grad_aux, const Call& call) const {
    throw Error(MIXLAB_UNIMPLEMENTED, "backward not implemented");
  }
  // Only with MIXLAB_CAP_DECODE.
  virtual std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const {
    throw Error(MIXLAB_UNIMPLEMENTED, "decode not implemented");
  }
  virtual torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const {
    throw Error(MIXLAB_UNIMPLEMENTED, "decode not implemented");
  }
  virtual Cost cost(int64_t seq_len, int32_t dtype_bytes) const { return {}; }
};

// A library-level check: fills passed/error/tolerance/message.
struct CheckResult {
  bool passed = false;
  double error = 0.0;
  double tolerance = 0.0;
  std::string message;
};
struct Check {
  const char* name;
  std::function<CheckResult(uint64_t seed)> run;
};

namespace detail {

// The host that loaded us (atomic: the entry point may be called from several threads).
inline std::atomic<const mixlab_host_api*>& host() {
  static std::atomic<const mixlab_host_api*> api{nullptr};
  return api;
}

// The ABI minor of the host that loaded us: side kinds it does not know are hidden from it.
inline std::atomic<uint32_t>& host_minor() {
  static std::atomic<uint32_t> minor{0};
  return minor;
}

inline mixlab_status* status(mixlab_code code, const std::string& message) {
  const mixlab_host_api* api = host();
  return api ? api->status_new(code, message.c_str()) : nullptr;
}

// Runs `fn`, turning every exception into a status.
template <class Fn>
mixlab_status* guarded(Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const Error& e) {
    return status(e.code(), e.what());
  } catch (const c10::OutOfMemoryError& e) {
    return status(MIXLAB_OUT_OF_MEMORY, e.what_without_backtrace());
  } catch (const c10::Error& e) {
    return status(MIXLAB_INTERNAL, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return status(MIXLAB_INTERNAL, e.what());
  } catch (...) {
    return status(MIXLAB_INTERNAL, "unknown exception");
  }
}

// A borrowed DLTensor as a LibTorch tensor sharing its memory.
inline torch::Tensor wrap(const DLTensor* t) {
  if (!t) throw Error(MIXLAB_INVALID_ARGUMENT, "null tensor");
  auto options = torch::TensorOptions()
                     .dtype(at::toScalarType(t->dtype))
                     .device(at::dlDeviceToTorchDevice(t->device.device_type,
                                                       static_cast<c10::DeviceIndex>(t->device.device_id)));
  at::IntArrayRef sizes(t->shape, t->ndim);
  char* data = static_cast<char*>(t->data) + t->byte_offset;
  if (t->strides) return torch::from_blob(data, sizes, at::IntArrayRef(t->strides, t->ndim), options);
  return torch::from_blob(data, sizes, options);
}

inline void write(DLTensor* dst, const torch::Tensor& src, const char* what) {
  auto out = wrap(dst);
  if (!src.defined()) {
    out.zero_();
    return;
  }
  if (out.sizes() != src.sizes())
    throw Error(MIXLAB_INTERNAL, std::string(what) + ": plugin produced shape " + c10::str(src.sizes()) +
                                     ", host expects " + c10::str(out.sizes()));
  out.copy_(src);
}

inline std::vector<int64_t> shape_of(const mixlab_param_spec& s) {
  return std::vector<int64_t>(s.shape, s.shape + s.ndim);
}

}  // namespace detail
}  // namespace mixlab

// The concrete instance behind the C handle: the module and C views of its specs.
struct mixlab_instance {
  std::unique_ptr<mixlab::Module> module;
  std::vector<mixlab::ParamSpec> params;
  std::vector<mixlab::SideSpec> sides;  // what the host sees: aux losses first
  std::vector<size_t> side_source;      // for each, its index in the module's sides()
  size_t declared_sides = 0;            // how many the module's forward returns
  std::vector<mixlab_param_spec> c_params;
  std::vector<mixlab_side_spec> c_sides;
  uint64_t caps = 0;
};

// What a forward keeps for backward: the autograd graph (derived backward) or
// the inputs (custom backward).
struct mixlab_saved {
  torch::Tensor x;
  std::vector<torch::Tensor> params;
  std::vector<torch::Tensor> outputs;  // y then aux losses, carrying the graph
  mixlab::Call call;
};

struct mixlab_state {
  std::unique_ptr<mixlab::State> state;
};

namespace mixlab {
namespace detail {

inline Params wrap_params(const mixlab_instance* inst, const DLTensor* const* params, int32_t n, bool grad) {
  if (n != static_cast<int32_t>(inst->params.size()))
    throw Error(MIXLAB_INVALID_ARGUMENT, "expected " + std::to_string(inst->params.size()) + " parameters, got " +
                                             std::to_string(n));
  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
  for (int32_t i = 0; i < n; ++i) {
    auto t = wrap(params[i]);
    if (grad) t.requires_grad_(true);
    names.push_back(inst->params[i].name);
    tensors.push_back(t);
  }
  return Params(std::move(names), std::move(tensors));
}

inline Call to_call(const mixlab_call* c) {
  Call call;
  if (c) {
    call.training = (c->flags & MIXLAB_CALL_TRAINING) != 0;
    call.seed = c->seed;
  }
  return call;
}

template <class M>
mixlab_status* create(const mixlab_create_args* args, mixlab_instance** out) noexcept {
  return guarded([&] {
    if (!args || !out) throw Error(MIXLAB_INVALID_ARGUMENT, "null argument");
    if (args->d_model < 1) throw Error(MIXLAB_INVALID_ARGUMENT, "d_model must be >= 1");
    if (args->max_seq_len < 1) throw Error(MIXLAB_INVALID_ARGUMENT, "max_seq_len must be >= 1");
    CreateArgs cargs{args->d_model, args->max_seq_len, Config(args->config_json ? args->config_json : "{}")};
    auto inst = std::make_unique<mixlab_instance>();
    inst->module = std::make_unique<M>(cargs);
    cargs.config.finish();
    inst->caps = M::info().caps;
    inst->params = inst->module->params();
    auto declared = inst->module->sides();
    inst->declared_sides = declared.size();
    for (int pass = 0; pass < 2; ++pass)  // aux losses first, as the ABI orders them
      for (size_t i = 0; i < declared.size(); ++i) {
        const auto& s = declared[i];
        if ((s.kind == MIXLAB_SIDE_AUX_LOSS) != (pass == 0)) continue;
        if (s.kind == MIXLAB_SIDE_TOKEN_STATISTIC && host_minor() < 1) continue;
        inst->sides.push_back(s);
        inst->side_source.push_back(i);
      }
    std::set<std::string> seen;
    for (const auto& p : inst->params) {
      if (p.shape.size() > MIXLAB_MAX_DIMS) throw Error(MIXLAB_INTERNAL, p.name + ": too many dimensions");
      for (auto d : p.shape)
        if (d < 1) throw Error(MIXLAB_INVALID_ARGUMENT, p.name + ": non-positive dimension in shape");
      if (!seen.insert(p.name).second) throw Error(MIXLAB_INTERNAL, "duplicate parameter name " + p.name);
      mixlab_param_spec c{};
      c.struct_size = sizeof(mixlab_param_spec);
      c.name = p.name.c_str();
      c.description = p.description.c_str();
      c.ndim = static_cast<int32_t>(p.shape.size());
      std::copy(p.shape.begin(), p.shape.end(), c.shape);
      c.init = p.init;
      c.init_a = p.a;
      c.init_b = p.b;
      c.flags = p.flags;
      inst->c_params.push_back(c);
    }
    for (const auto& s : inst->sides) {
      mixlab_side_spec c{};
      c.struct_size = sizeof(mixlab_side_spec);
      c.name = s.name.c_str();
      c.description = s.description.c_str();
      c.kind = s.kind;
      c.ndim = static_cast<int32_t>(s.shape.size());
      std::copy(s.shape.begin(), s.shape.end(), c.shape);
      c.coefficient = s.coefficient;
      inst->c_sides.push_back(c);
    }
    *out = inst.release();
  });
}

inline void destroy(mixlab_instance* inst) noexcept { delete inst; }

inline mixlab_status* param_specs(const mixlab_instance* inst, const mixlab_param_spec** specs,
                                  int32_t* count) noexcept {
  return guarded([&] {
    *specs = inst->c_params.data();
    *count = static_cast<int32_t>(inst->c_params.size());
  });
}

inline mixlab_status* side_specs(const mixlab_instance* inst, const mixlab_side_spec** specs,
                                 int32_t* count) noexcept {
  return guarded([&] {
    *specs = inst->c_sides.data();
    *count = static_cast<int32_t>(inst->c_sides.size());
  });
}

inline mixlab_status* init_param(const mixlab_instance* inst, int32_t index, uint64_t seed,
                                 DLTensor* param) noexcept {
  return guarded([&] {
    if (index < 0 || index >= static_cast<int32_t>(inst->params.size()))
      throw Error(MIXLAB_INVALID_ARGUMENT, "parameter index out of range");
    torch::NoGradGuard no_grad;
    auto t = wrap(param);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    // Initialise on the CPU in float64 so the values do not depend on device or dtype.
    auto tmp = torch::empty(t.sizes(), torch::kFloat64);
    inst->module->init_param(inst->params[index].name, tmp, gen);
    t.copy_(tmp);
  });
}

inline void check_x(const torch::Tensor& x) {
  if (x.dim() != 3) throw Error(MIXLAB_INVALID_ARGUMENT, "x must be (B, T, d_model), got " + c10::str(x.sizes()));
}

inline mixlab_status* forward(const mixlab_instance* inst, const mixlab_call* call, const DLTensor* x,
                              const DLTensor* const* params, int32_t n_params, DLTensor* y,
                              DLTensor* const* side, int32_t n_side, mixlab_saved** saved) noexcept {
  return guarded([&] {
    if (saved) *saved = nullptr;
    if (n_side != static_cast<int32_t>(inst->sides.size()))
      throw Error(MIXLAB_INVALID_ARGUMENT, "expected " + std::to_string(inst->sides.size()) + " side outputs");
    Call c = to_call(call);
    bool needs_grad = call && (call->flags & MIXLAB_CALL_NEEDS_GRAD) && saved;
    bool derive = needs_grad && !(inst->caps & MIXLAB_CAP_CUSTOM_BACKWARD);
    torch::AutoGradMode grad_mode(derive);
    auto xt = wrap(x);
    check_x(xt);
    if (derive) xt = xt.detach().requires_grad_(true);
    Params p = wrap_params(inst, params, n_params, derive);
    Output out = inst->module->forward(xt, p, c);
    const size_t declared = inst->declared_sides;
    if (out.side.size() != declared)
      throw Error(MIXLAB_INTERNAL, "forward returned " + std::to_string(out.side.size()) + " side outputs, declared " +
                                       std::to_string(declared));
    {
      torch::NoGradGuard no_grad;
      write(y, out.y, "y");
      for (int32_t i = 0; i < n_side; ++i)
        write(side[i], out.side[inst->side_source[i]].to(wrap(side[i]).scalar_type()), inst->sides[i].name.c_str());
    }
    if (needs_grad) {
      auto s = std::make_unique<mixlab_saved>();
      s->x = xt;
      s->params = p.tensors();
      s->call = c;
      s->outputs.push_back(out.y);
      for (size_t i = 0; i < inst->sides.size(); ++i)
        if (inst->sides[i].kind == MIXLAB_SIDE_AUX_LOSS) s->outputs.push_back(out.side[inst->side_source[i]]);
      *saved = s.release();
    }
  });
}

inline mixlab_status* backward(const mixlab_instance* inst, const mixlab_call* call, mixlab_saved* saved,
                               const DLTensor* grad_y, const DLTensor* const* grad_aux, int32_t n_aux,
                               DLTensor* grad_x, DLTensor* const* grad_params, int32_t n_params) noexcept {
  std::unique_ptr<mixlab_saved> s(saved);
  return guarded([&] {
    if (!s) throw Error(MIXLAB_INVALID_ARGUMENT, "backward without a saved forward");
    if (n_params != static_cast<int32_t>(s->params.size()))
      throw Error(MIXLAB_INVALID_ARGUMENT, "parameter count mismatch in backward");
    auto gy = wrap(grad_y);
    std::vector<torch::Tensor> gaux;
    for (int32_t i = 0; i < n_aux; ++i) gaux.push_back(wrap(grad_aux[i]));
    Grads g;
    if (inst->caps & MIXLAB_CAP_CUSTOM_BACKWARD) {
      std::vector<std::string> names;
      for (const auto& spec : inst->params) names.push_back(spec.name);
      g = inst->module->backward(s->x, Params(names, s->params), gy, gaux, s->call);
    } else {
      if (n_aux + 1 != static_cast<int32_t>(s->outputs.size()))
        throw Error(MIXLAB_INVALID_ARGUMENT, "aux gradient count mismatch in backward");
      std::vector<torch::Tensor> outs, grads_out, inputs;
      auto add_output = [&](const torch::Tensor& o, const torch::Tensor& go) {
        if (o.requires_grad()) outs.push_back(o), grads_out.push_back(go.to(o.scalar_type()).reshape(o.sizes()));
      };
      add_output(s->outputs[0], gy);
      for (int32_t i = 0; i < n_aux; ++i) add_output(s->outputs[i + 1], gaux[i]);
      inputs.push_back(s->x);
      for (auto& t : s->params) inputs.push_back(t);
      std::vector<torch::Tensor> grads(inputs.size());
      if (!outs.empty())
        grads = torch::autograd::grad(outs, inputs, grads_out, /*retain_graph=*/false, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      g.x = grads[0];
      g.params.assign(grads.begin() + 1, grads.end());
    }
    torch::NoGradGuard no_grad;
    if (grad_x) write(grad_x, g.x, "grad_x");
    for (int32_t i = 0; i < n_params; ++i)
      if (grad_params[i]) write(grad_params[i], i < static_cast<int32_t>(g.params.size()) ? g.params[i] : torch::Tensor(),
                                inst->params[i].name.c_str());
  });
}

inline void saved_release(mixlab_saved* saved) { delete saved; }

inline mixlab_status* state_create(const mixlab_instance* inst, int64_t batch, DLDataType dtype, DLDevice device,
                                   mixlab_state** out) noexcept {
  return guarded([&] {
    auto options = torch::TensorOptions()
                       .dtype(at::toScalarType(dtype))
                       .device(at::dlDeviceToTorchDevice(device.device_type,
                                                         static_cast<c10::DeviceIndex>(device.device_id)));
    auto st = std::make_unique<mixlab_state>();
    st->state = inst->module->new_state(batch, options);
    *out = st.release();
  });
}

inline void state_destroy(mixlab_state* state) noexcept { delete state; }

inline mixlab_status* step(const mixlab_instance* inst, const mixlab_call* call, mixlab_state* state,
                           const DLTensor* x, const DLTensor* const* params, int32_t n_params, DLTensor* y) noexcept {
  return guarded([&] {
    torch::NoGradGuard no_grad;
    auto xt = wrap(x);
    check_x(xt);
    Params p = wrap_params(inst, params, n_params, false);
    write(y, inst->module->step(*state->state, xt, p), "y");
  });
}

inline mixlab_status* cost(const mixlab_instance* inst, int64_t seq_len, int32_t dtype_bytes,
                           mixlab_cost* out) noexcept {
  return guarded([&] {
    Cost c = inst->module->cost(seq_len, dtype_bytes);
    double total = 0;
    for (const auto& p : inst->params) {
      double n = 1;
      for (auto d : p.shape) n *= static_cast<double>(d);
      total += n;
    }
    out->active_params = c.active_params < 0 ? total : c.active_params;
    out->forward_flops = c.forward_flops < 0 ? 2.0 * out->active_params : c.forward_flops;
    out->state_bytes = c.state_bytes;
    out->state_grows = c.state_grows ? 1 : 0;
    if (MIXLAB_HAS_FIELD(out, mixlab_cost, attention_heads)) {  // a host of ABI >= 1.2
      out->kv_head_bytes_per_token = c.kv_head_bytes_per_token;
      out->attention_heads = c.attention_heads;
    }
  });
}

}  // namespace detail

// The C descriptor of implementation M (a Module with a static info() and a
// constructor taking CreateArgs).
template <class M>
const mixlab_impl* impl() {
  static const mixlab_impl desc = [] {
    ImplInfo info = M::info();
    mixlab_impl d{};
    d.struct_size = sizeof(mixlab_impl);
    d.family = info.family;
    d.name = info.name;
    d.impl = info.impl;
    d.version = info.version;
    d.description = info.description;
    d.caps = info.caps;
    d.causality_bound = info.causality_bound;
    d.create = &detail::create<M>;
    d.destroy = &detail::destroy;
    d.param_specs = &detail::param_specs;
    d.side_specs = &detail::side_specs;
    d.init_param = &detail::init_param;
    d.forward = &detail::forward;
    d.backward = &detail::backward;
    d.saved_release = &detail::saved_release;
    if (info.caps & MIXLAB_CAP_DECODE) {
      d.state_create = &detail::state_create;
      d.state_destroy = &detail::state_destroy;
      d.step = &detail::step;
    }
    d.cost = &detail::cost;
    return d;
  }();
  return &desc;
}

namespace detail {

inline const std::vector<Check>*& checks() {
  static const std::vector<Check>* list = nullptr;
  return list;
}

inline mixlab_status* run_check(int32_t index, uint64_t seed, mixlab_check_result* out) noexcept {
  return guarded([&] {
    const auto* list = checks();
    if (!list || index < 0 || index >= static_cast<int32_t>(list->size()))
      throw Error(MIXLAB_INVALID_ARGUMENT, "check index out of range");
    torch::manual_seed(seed);
    CheckResult r = (*list)[index].run(seed);
    out->passed = r.passed ? 1 : 0;
    out->error = r.error;
    out->tolerance = r.tolerance;
    std::snprintf(out->message, sizeof(out->message), "%s", r.message.c_str());
  });
}

// What mixlab_plugin_entry answers. Built once (a function-local static, so
// thread-safe), never changed afterwards: every answer is one of two immutable
// descriptors, so a second call (from another thread, or from a host of
// another ABI major) cannot alter the descriptor an earlier caller holds.
class Library {
 public:
  Library(std::vector<const mixlab_impl*> impls, std::vector<Check> check_list)
      : impls_(std::move(impls)), checks_(std::move(check_list)) {
    for (const auto& c : checks_) names_.push_back(c.name);
    checks() = &checks_;  // once, before any answer is given
    full_.struct_size = versions_only_.struct_size = sizeof(mixlab_library);
    full_.abi_major = versions_only_.abi_major = MIXLAB_ABI_MAJOR;
    full_.abi_minor = versions_only_.abi_minor = MIXLAB_ABI_MINOR;
    full_.build_tag = versions_only_.build_tag = MIXLAB_BUILD_TAG;
    full_.n_impls = static_cast<int32_t>(impls_.size());
    full_.impls = impls_.data();
    full_.n_checks = static_cast<int32_t>(checks_.size());
    full_.check_names = names_.data();
    full_.run_check = &run_check;
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  // A host of another major gets the version fields only (it refuses us by name).
  const mixlab_library* answer(uint32_t host_major, uint32_t host_minor_, const mixlab_host_api* api) const {
    bool compatible = host_major == MIXLAB_ABI_MAJOR && api && api->struct_size >= MIXLAB_STRUCT_SIZE(mixlab_host_api, log);
    if (!compatible) return &versions_only_;
    host().store(api), host_minor().store(host_minor_);
    return &full_;
  }

 private:
  std::vector<const mixlab_impl*> impls_;
  std::vector<Check> checks_;
  std::vector<const char*> names_;
  mixlab_library full_{}, versions_only_{};
};

}  // namespace detail
}  // namespace mixlab

// Export a library of implementations, optionally with family checks:
//   MIXLAB_PLUGIN(mixlab::impl<A>(), mixlab::impl<B>())
//   MIXLAB_PLUGIN_WITH_CHECKS(my_checks(), mixlab::impl<A>(), mixlab::impl<B>())
#define MIXLAB_PLUGIN_WITH_CHECKS(checks_expr, ...)                                                  \
  extern "C" MIXLAB_EXPORT const mixlab_library* mixlab_plugin_entry(                              \
      uint32_t host_major, uint32_t host_minor, const mixlab_host_api* host) {                      \
    try {                                                                                           \
      static const mixlab::detail::Library library({__VA_ARGS__}, checks_expr);                    \
      return library.answer(host_major, host_minor, host);                                          \
    } catch (...) {                                                                                 \
      return nullptr;                                                                               \
    }                                                                                               \
  }
#define MIXLAB_PLUGIN(...) MIXLAB_PLUGIN_WITH_CHECKS(std::vector<mixlab::Check>{}, __VA_ARGS__)
