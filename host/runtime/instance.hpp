// A configured plugin implementation on the host side: its parameter and side
// output specs in C++ form, parameter allocation, forward through the autograd
// bridge, decode states and the cost model. Shared (shared_ptr) because
// autograd nodes and decode states keep it, and with it the library, alive.
#pragma once

#include "runtime/registry.hpp"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mixlab {

struct ParamInfo {
  std::string name;
  std::string description;
  std::vector<int64_t> shape;
  int32_t init = MIXLAB_INIT_NORMAL;
  double a = 0.0, b = 0.0;
  uint32_t flags = 0;
  bool weight_decay() const { return !(flags & MIXLAB_PARAM_NO_WEIGHT_DECAY); }
  int64_t numel() const;
};

struct SideInfo {
  std::string name;
  std::string description;
  int32_t kind = MIXLAB_SIDE_STATISTIC;
  std::vector<int64_t> shape;
  double coefficient = 0.0;
};

// The outputs of one forward.
struct ForwardResult {
  torch::Tensor y;
  std::vector<torch::Tensor> aux_losses;  // differentiable scalars, in side-spec order
  std::vector<torch::Tensor> statistics;  // float32, detached; token statistics included, in side-spec order
};

struct CallOptions {
  bool training = false;
  uint64_t seed = 0;
};

class DecodeState;

class PluginInstance : public std::enable_shared_from_this<PluginInstance> {
 public:
  // Throws PluginError (code MIXLAB_INVALID_ARGUMENT for a rejected config).
  static std::shared_ptr<PluginInstance> create(const ImplRef& ref, int64_t d_model, int64_t max_seq_len,
                                                const std::string& config_json);
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  const ImplRef& ref() const { return ref_; }
  const mixlab_impl& impl() const { return *ref_.impl; }
  mixlab_instance* handle() const { return handle_; }
  const std::string& config_json() const { return config_json_; }
  int64_t d_model() const { return d_model_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  const std::vector<SideInfo>& sides() const { return sides_; }
  size_t n_aux() const;
  int64_t n_parameters() const;
  bool can_decode() const { return (ref_.impl->caps & MIXLAB_CAP_DECODE) != 0; }

  // Allocates and initialises the parameters from their specs, deterministically from `seed`.
  std::vector<torch::Tensor> init_params(torch::ScalarType dtype, torch::Device device, uint64_t seed,
                                         double init_std) const;

  // y = f(x; params) as one autograd node: gradients flow to x and the params
  // through the plugin's backward.
  ForwardResult forward(const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                        const CallOptions& options = {});

  std::unique_ptr<DecodeState> new_state(int64_t batch, torch::ScalarType dtype, torch::Device device);
  mixlab_cost cost(int64_t seq_len, int32_t dtype_bytes) const;

 private:
  PluginInstance() = default;
  ImplRef ref_;
  mixlab_instance* handle_ = nullptr;
  std::string config_json_;
  int64_t d_model_ = 0;
  std::vector<ParamInfo> params_;
  std::vector<SideInfo> sides_;
};

// A decode state; keeps its instance (and library) alive.
class DecodeState {
 public:
  DecodeState(std::shared_ptr<PluginInstance> instance, mixlab_state* state)
      : instance_(std::move(instance)), state_(state) {}
  ~DecodeState();
  DecodeState(const DecodeState&) = delete;
  DecodeState& operator=(const DecodeState&) = delete;

  // Continues the sequence with x (B, T, d_model); returns y (B, T, d_model).
  torch::Tensor step(const torch::Tensor& x, const std::vector<torch::Tensor>& params);

 private:
  std::shared_ptr<PluginInstance> instance_;
  mixlab_state* state_;
};

}  // namespace mixlab
