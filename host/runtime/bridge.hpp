// The autograd bridge: one torch::autograd::Function whose forward and backward
// call the plugin's forward and backward through the C ABI.
#pragma once

#include "runtime/instance.hpp"

namespace mixlab {

ForwardResult bridge_forward(const std::shared_ptr<PluginInstance>& instance, const torch::Tensor& x,
                             const std::vector<torch::Tensor>& params, const CallOptions& options);

}  // namespace mixlab
