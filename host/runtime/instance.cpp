#include "runtime/instance.hpp"

#include "runtime/bridge.hpp"
#include "runtime/dlpack_view.hpp"
#include "runtime/host_api.hpp"

namespace mixlab {

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::shared_ptr<PluginInstance> PluginInstance::create(const ImplRef& ref, int64_t d_model, int64_t max_seq_len,
                                                       const std::string& config_json) {
  std::shared_ptr<PluginInstance> inst(new PluginInstance());
  inst->ref_ = ref;
  inst->config_json_ = config_json;
  inst->d_model_ = d_model;
  mixlab_create_args args{sizeof(mixlab_create_args), d_model, max_seq_len, config_json.c_str()};
  check_status(ref.impl->create(&args, &inst->handle_), ref.label() + " config");
  if (!inst->handle_) throw PluginError(MIXLAB_INTERNAL, ref.label() + ": create returned no instance");

  const mixlab_param_spec* specs = nullptr;
  int32_t n = 0;
  check_status(ref.impl->param_specs(inst->handle_, &specs, &n), ref.label() + " param_specs");
  for (int32_t i = 0; i < n; ++i) {
    const auto& s = specs[i];
    if (s.ndim < 0 || s.ndim > MIXLAB_MAX_DIMS)
      throw PluginError(MIXLAB_INTERNAL, ref.label() + ": parameter " + std::to_string(i) + " has ndim " + std::to_string(s.ndim));
    inst->params_.push_back(ParamInfo{s.name ? s.name : "", s.description ? s.description : "",
                                      std::vector<int64_t>(s.shape, s.shape + s.ndim), s.init, s.init_a, s.init_b,
                                      s.flags});
  }
  const mixlab_side_spec* sides = nullptr;
  check_status(ref.impl->side_specs(inst->handle_, &sides, &n), ref.label() + " side_specs");
  for (int32_t i = 0; i < n; ++i) {
    const auto& s = sides[i];
    if (s.kind < MIXLAB_SIDE_AUX_LOSS || s.kind > MIXLAB_SIDE_TOKEN_STATISTIC)
      throw PluginError(MIXLAB_INTERNAL, ref.label() + ": side output " + std::to_string(i) + " has unknown kind " +
                                             std::to_string(s.kind));
    if (s.ndim < 0 || s.ndim > MIXLAB_MAX_DIMS - 2)
      throw PluginError(MIXLAB_INTERNAL, ref.label() + ": side output " + std::to_string(i) + " has ndim " +
                                             std::to_string(s.ndim));
    inst->sides_.push_back(SideInfo{s.name ? s.name : "", s.description ? s.description : "", s.kind,
                                    std::vector<int64_t>(s.shape, s.shape + std::max(0, s.ndim)), s.coefficient});
  }
  return inst;
}

PluginInstance::~PluginInstance() {
  if (handle_) ref_.impl->destroy(handle_);
}

size_t PluginInstance::n_aux() const {
  return static_cast<size_t>(std::count_if(sides_.begin(), sides_.end(),
                                           [](const SideInfo& s) { return s.kind == MIXLAB_SIDE_AUX_LOSS; }));
}

int64_t PluginInstance::n_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.numel();
  return n;
}

std::vector<torch::Tensor> PluginInstance::init_params(torch::ScalarType dtype, torch::Device device, uint64_t seed,
                                                       double init_std) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    // One generator per parameter, seeded from (seed, index): a parameter's
    // values do not depend on how many values the others drew.
    uint64_t pseed = seed * 1000003ull + i * 7919ull + 1;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(pseed);
    auto t = torch::empty(p.shape, torch::kFloat64);
    switch (p.init) {
      case MIXLAB_INIT_ZEROS: t.zero_(); break;
      case MIXLAB_INIT_ONES: t.fill_(1.0); break;
      case MIXLAB_INIT_CONSTANT: t.fill_(p.a); break;
      case MIXLAB_INIT_NORMAL: t.normal_(p.a, p.b > 0 ? p.b : init_std, gen); break;
      case MIXLAB_INIT_UNIFORM: t.uniform_(p.a, p.b, gen); break;
      case MIXLAB_INIT_PLUGIN: {
        DLTensor v = dl_view(t);
        check_status(ref_.impl->init_param(handle_, static_cast<int32_t>(i), pseed, &v),
                     ref_.label() + " init_param " + p.name);
        break;
      }
      default:
        throw PluginError(MIXLAB_INTERNAL, ref_.label() + ": parameter " + p.name + " has unknown init " +
                                               std::to_string(p.init));
    }
    out.push_back(t.to(device, dtype).requires_grad_(true));
  }
  return out;
}

ForwardResult PluginInstance::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                                      const CallOptions& options) {
  if (x.dim() != 3 || x.size(2) != d_model_)
    throw PluginError(MIXLAB_INVALID_ARGUMENT, ref_.label() + ": x must be (B, T, " + std::to_string(d_model_) +
                                                   "), got " + c10::str(x.sizes()));
  if (params.size() != params_.size())
    throw PluginError(MIXLAB_INVALID_ARGUMENT, ref_.label() + ": expected " + std::to_string(params_.size()) +
                                                   " parameters, got " + std::to_string(params.size()));
  return bridge_forward(shared_from_this(), x, params, options);
}

std::unique_ptr<DecodeState> PluginInstance::new_state(int64_t batch, torch::ScalarType dtype, torch::Device device) {
  if (!can_decode()) throw PluginError(MIXLAB_UNIMPLEMENTED, ref_.label() + " does not declare decode");
  auto probe = torch::empty({0}, torch::TensorOptions().dtype(dtype).device(device));
  DLTensor v = dl_view(probe);
  mixlab_state* state = nullptr;
  check_status(ref_.impl->state_create(handle_, batch, v.dtype, v.device, &state), ref_.label() + " state_create");
  return std::make_unique<DecodeState>(shared_from_this(), state);
}

mixlab_cost PluginInstance::cost(int64_t seq_len, int32_t dtype_bytes) const {
  mixlab_cost c{};
  c.struct_size = sizeof(c);
  if (!ref_.impl->cost) {
    c.active_params = static_cast<double>(n_parameters());
    c.forward_flops = 2.0 * c.active_params;
    return c;
  }
  check_status(ref_.impl->cost(handle_, seq_len, dtype_bytes, &c), ref_.label() + " cost");
  return c;
}

DecodeState::~DecodeState() {
  if (state_) instance_->impl().state_destroy(state_);
}

torch::Tensor DecodeState::step(const torch::Tensor& x, const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  auto y = torch::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  DLTensor xv = dl_view(x), yv = dl_view(y);
  DLViews pv(params);
  mixlab_call call{sizeof(mixlab_call), 0, 0, nullptr};
  check_status(instance_->impl().step(instance_->handle(), &call, state_, &xv, pv.cdata(), pv.size(), &yv),
               instance_->ref().label() + " step");
  return y;
}

}  // namespace mixlab
