// Borrowed DLTensor views of host tensors, valid while the tensors live.
#pragma once

#include <ATen/DLConvertor.h>
#include <torch/torch.h>

#include <vector>

namespace mixlab {

inline DLTensor dl_view(const torch::Tensor& t) {
  DLTensor out{};
  at::toDLPackNonOwning(t, &out);
  return out;
}

// Views of many tensors plus the pointer array the C ABI takes. Undefined
// tensors become NULL pointers.
class DLViews {
 public:
  explicit DLViews(const std::vector<torch::Tensor>& tensors) : views_(tensors.size()), ptrs_(tensors.size()) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].defined()) continue;
      views_[i] = dl_view(tensors[i]);
      ptrs_[i] = &views_[i];
    }
  }
  DLTensor* const* data() { return ptrs_.data(); }
  const DLTensor* const* cdata() const { return ptrs_.data(); }
  int32_t size() const { return static_cast<int32_t>(ptrs_.size()); }

 private:
  std::vector<DLTensor> views_;
  std::vector<DLTensor*> ptrs_;
};

}  // namespace mixlab
