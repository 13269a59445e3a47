// bfloat16 autocast for a forward pass (parameters and optimizer stay float32): on while the
// scope lives; its end turns it off and drops autocast's per-step cache of weight casts.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace mixlab {

class AutocastScope {
 public:
  AutocastScope(bool enabled, torch::Device device) : enabled_(enabled), type_(device.type()) {
    if (!enabled_) return;
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
    at::autocast::set_autocast_enabled(type_, true);
  }
  ~AutocastScope() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(type_, false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  at::DeviceType type_;
};

}  // namespace mixlab
