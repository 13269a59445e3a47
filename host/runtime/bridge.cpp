#include "runtime/bridge.hpp"

#include "runtime/dlpack_view.hpp"
#include "runtime/host_api.hpp"

namespace mixlab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the autograd node keeps: the instance (and so the library: an unloaded
// library under a live graph would crash in backward) and the plugin's saved
// handle, released here if backward never runs.
struct SavedHandle : torch::CustomClassHolder {
  std::shared_ptr<PluginInstance> instance;
  mixlab_saved* saved = nullptr;
  CallOptions options;
  ~SavedHandle() override {
    if (saved) instance->impl().saved_release(saved);
  }
};

mixlab_call make_call(const CallOptions& options, bool needs_grad) {
  mixlab_call call{};
  call.struct_size = sizeof(call);
  call.flags = (options.training ? MIXLAB_CALL_TRAINING : 0u) | (needs_grad ? MIXLAB_CALL_NEEDS_GRAD : 0u);
  call.seed = options.seed;
  return call;
}

std::string context(const PluginInstance& inst, const char* what) { return inst.ref().label() + " " + what; }

// Runs the plugin forward; the outputs are y, the aux losses, the statistics.
variable_list run_forward(PluginInstance& inst, const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                          const CallOptions& options, mixlab_saved** saved) {
  auto y = torch::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  std::vector<torch::Tensor> side;
  // Aux losses carry gradients: at least float32, float64 for float64 inputs (finite
  // differences need it). Statistics are float32; token statistics get (B, T) in front.
  auto aux_dtype = torch::promote_types(x.scalar_type(), torch::kFloat32);
  for (const auto& s : inst.sides()) {
    std::vector<int64_t> shape = s.shape;
    if (s.kind == MIXLAB_SIDE_TOKEN_STATISTIC) shape.insert(shape.begin(), {x.size(0), x.size(1)});
    side.push_back(torch::zeros(shape, x.options().dtype(s.kind == MIXLAB_SIDE_AUX_LOSS ? aux_dtype : torch::kFloat32)));
  }
  DLTensor xv = dl_view(x), yv = dl_view(y);
  DLViews pv(params), sv(side);
  mixlab_call call = make_call(options, saved != nullptr);
  check_status(inst.impl().forward(inst.handle(), &call, &xv, pv.cdata(), pv.size(), &yv, sv.data(), sv.size(), saved),
               context(inst, "forward"));
  variable_list out{y};
  out.insert(out.end(), side.begin(), side.end());
  return out;
}

struct PluginFunction : public torch::autograd::Function<PluginFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, at::TensorList params,
                               SavedHandle* handle_raw) {
    c10::intrusive_ptr<SavedHandle> handle = c10::intrusive_ptr<SavedHandle>::reclaim(handle_raw);
    PluginInstance& inst = *handle->instance;
    std::vector<torch::Tensor> p(params.begin(), params.end());
    auto out = run_forward(inst, x, p, handle->options, &handle->saved);
    // Inputs and parameters must stay unmodified until backward (the ABI's
    // borrowing rule); saving them makes autograd check their versions.
    variable_list to_save{x};
    to_save.insert(to_save.end(), p.begin(), p.end());
    ctx->save_for_backward(to_save);
    ctx->saved_data["handle"] = c10::IValue::make_capsule(handle);
    variable_list stats(out.begin() + 1 + static_cast<long>(inst.n_aux()), out.end());
    ctx->mark_non_differentiable(stats);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    auto handle = c10::static_intrusive_pointer_cast<SavedHandle>(ctx->saved_data["handle"].toCapsule());
    PluginInstance& inst = *handle->instance;
    const torch::Tensor& x = saved[0];
    std::vector<torch::Tensor> params(saved.begin() + 1, saved.end());
    if (!handle->saved) throw PluginError(MIXLAB_INTERNAL, context(inst, "backward") + ": called twice");

    auto grad_y = grad_outputs[0].defined() ? grad_outputs[0].contiguous() : torch::zeros_like(x);
    std::vector<torch::Tensor> grad_aux;
    for (size_t i = 0; i < inst.n_aux(); ++i) {
      const auto& g = grad_outputs[1 + i];
      auto dtype = torch::promote_types(x.scalar_type(), torch::kFloat32);
      grad_aux.push_back(g.defined() ? g.to(dtype).contiguous() : torch::zeros({}, x.options().dtype(dtype)));
    }
    torch::Tensor grad_x = ctx->needs_input_grad(0) ? torch::empty_like(x, at::MemoryFormat::Contiguous) : torch::Tensor();
    std::vector<torch::Tensor> grad_params(params.size());
    for (size_t i = 0; i < params.size(); ++i)
      if (ctx->needs_input_grad(1 + i)) grad_params[i] = torch::empty_like(params[i], at::MemoryFormat::Contiguous);

    DLTensor gy = dl_view(grad_y);
    DLTensor gx{};
    if (grad_x.defined()) gx = dl_view(grad_x);
    DLViews ga(grad_aux), gp(grad_params);
    mixlab_call call = make_call(handle->options, true);
    mixlab_saved* s = handle->saved;
    handle->saved = nullptr;  // backward consumes it, even on error
    check_status(inst.impl().backward(inst.handle(), &call, s, &gy, ga.cdata(), ga.size(),
                                      grad_x.defined() ? &gx : nullptr, gp.data(), gp.size()),
                 context(inst, "backward"));
    variable_list result{grad_x};
    result.insert(result.end(), grad_params.begin(), grad_params.end());
    result.emplace_back();  // the handle argument
    return result;
  }
};

}  // namespace

ForwardResult bridge_forward(const std::shared_ptr<PluginInstance>& instance, const torch::Tensor& x,
                             const std::vector<torch::Tensor>& params, const CallOptions& options) {
  bool needs_grad = torch::GradMode::is_enabled() &&
                    (x.requires_grad() || std::any_of(params.begin(), params.end(),
                                                      [](const torch::Tensor& p) { return p.requires_grad(); }));
  variable_list out;
  if (needs_grad) {
    auto handle = c10::make_intrusive<SavedHandle>();
    handle->instance = instance;
    handle->options = options;
    out = PluginFunction::apply(x, at::TensorList(params), handle.release());
  } else {
    out = run_forward(*instance, x, params, options, nullptr);
  }
  ForwardResult r;
  r.y = out[0];
  size_t n_aux = instance->n_aux();
  r.aux_losses.assign(out.begin() + 1, out.begin() + 1 + static_cast<long>(n_aux));
  r.statistics.assign(out.begin() + 1 + static_cast<long>(n_aux), out.end());
  return r;
}

}  // namespace mixlab
