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

}  // namespace mixlab::test
