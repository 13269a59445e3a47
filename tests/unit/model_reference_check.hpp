// What a host-composition test compares between a Model and its float64 rebuild: a relative error,
// the model's parameters as float64 leaves for the rebuild, and every parameter's gradient.
#pragma once

#include "model/model.hpp"

#include <doctest/doctest.h>
#include <torch/torch.h>

#include <map>
#include <string>

namespace mixlab::test {

// ||a - b|| / ||b||, in float64.
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.detach().to(torch::kFloat64), b64 = b.detach().to(torch::kFloat64);
  return ((a64 - b64).norm() / b64.norm().clamp_min(1e-300)).item<double>();
}

// The model's parameters as float64 leaves, by name: the rebuild's inputs.
inline std::map<std::string, torch::Tensor> float64_leaves(const mixlab::Model& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.parameters()) out[p.name] = p.tensor.detach().to(torch::kFloat64).requires_grad_(true);
  return out;
}

// After backward through the model and through the rebuild on `leaves`: every parameter has a
// gradient, within `tolerance` relative error of its leaf's.
inline void check_gradients(const mixlab::Model& model, const std::map<std::string, torch::Tensor>& leaves,
                            double tolerance = 1e-4) {
  for (const auto& p : model.parameters()) {
    CAPTURE(p.name);
    REQUIRE(p.tensor.grad().defined());
    CHECK(relative_error(p.tensor.grad(), leaves.at(p.name).grad()) < tolerance);
  }
}

// The test plugins' blocks in float64 from their definitions, on copies `p` of a model's
// parameters: prefix_mean (y_t = W mean(x_0..x_t)) and the relu mlp (W_out relu(W_in x)) in pre-
// or post-norm layers of RMSNorm or LayerNorm. The rebuilds of host compositions start from it.
struct PrefixMeanReference {
  std::map<std::string, torch::Tensor> p;
  bool layernorm = false, pre = true;
  double eps = 1e-5;

  torch::Tensor norm(const torch::Tensor& x, const std::string& name) const {
    if (!layernorm) return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * p.at(name + ".weight");
    auto centred = x - x.mean(-1, true);
    return centred * torch::rsqrt(centred.pow(2).mean(-1, true) + eps) * p.at(name + ".weight") + p.at(name + ".bias");
  }
  torch::Tensor mixer(const torch::Tensor& x, const std::string& prefix) const {
    auto counts = torch::arange(1, x.size(1) + 1, x.options()).view({1, -1, 1});
    return torch::matmul(torch::cumsum(x, 1) / counts, p.at(prefix + ".mixer.w").t());
  }
  torch::Tensor ffn(const torch::Tensor& x, const std::string& prefix) const {
    return torch::matmul(torch::relu(torch::matmul(x, p.at(prefix + ".ffn.w_in").t())), p.at(prefix + ".ffn.w_out").t());
  }
  torch::Tensor layer(torch::Tensor h, const std::string& prefix) const {
    if (pre) {
      h = h + mixer(norm(h, prefix + ".norm1"), prefix);
      return h + ffn(norm(h, prefix + ".norm2"), prefix);
    }
    h = norm(h + mixer(h, prefix), prefix + ".norm1");
    return norm(h + ffn(h, prefix), prefix + ".norm2");
  }
};

}  // namespace mixlab::test
