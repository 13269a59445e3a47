// The autograd bridge: gradients through a plugin equal the gradients of the
// same function computed in-process, and the graph keeps the library alive.
#include "runtime/instance.hpp"
#include "runtime/registry.hpp"
#include "test_plugin_files.hpp"

#include <doctest/doctest.h>

using namespace mixlab;

namespace {

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("bridge: plugin gradients equal in-process autograd (prefix mean, float64)") {
  Registry r;
  r.add_file(test::test_plugin("prefix_mean"));
  auto inst = PluginInstance::create(r.impls()[0], 6, 16, "{}");
  auto params = inst->init_params(torch::kFloat64, torch::kCPU, 3, 0.5);
  auto x = torch::randn({2, 5, 6}, torch::kFloat64).requires_grad_(true);
  auto gy = torch::randn({2, 5, 6}, torch::kFloat64);
  (inst->forward(x, params).y * gy).sum().backward();

  auto x2 = x.detach().clone().requires_grad_(true);
  auto w2 = params[0].detach().clone().requires_grad_(true);
  auto counts = torch::arange(1, 6, torch::kFloat64).view({1, -1, 1});
  (torch::linear(torch::cumsum(x2, 1) / counts, w2) * gy).sum().backward();
  CHECK(max_diff(x.grad(), x2.grad()) < 1e-12);
  CHECK(max_diff(params[0].grad(), w2.grad()) < 1e-12);
}

TEST_CASE("bridge: mlp plugin gradients equal in-process swiglu with biases") {
  Registry r;
  r.add_file(test::bundled_plugin("moe"));
  auto inst = PluginInstance::create(r.select({"mlp", std::nullopt, std::nullopt}), 8, 16,
                                     R"({"activation": "swiglu", "hidden": 12, "bias": true})");
  auto params = inst->init_params(torch::kFloat64, torch::kCPU, 5, 0.3);
  std::map<std::string, torch::Tensor> p;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::NoGradGuard ng;
    params[i].normal_(0, 0.3);  // biases start at zero; give them values too
    p[inst->params()[i].name] = params[i];
  }
  auto x = torch::randn({3, 4, 8}, torch::kFloat64).requires_grad_(true);
  auto gy = torch::randn({3, 4, 8}, torch::kFloat64);
  (inst->forward(x, params).y * gy).sum().backward();

  std::map<std::string, torch::Tensor> q;
  for (auto& [k, v] : p) q[k] = v.detach().clone().requires_grad_(true);
  auto x2 = x.detach().clone().requires_grad_(true);
  auto h = torch::silu(torch::linear(x2, q["w_in"], q["b_in"])) * torch::linear(x2, q["w_gate"], q["b_gate"]);
  (torch::linear(h, q["w_out"], q["b_out"]) * gy).sum().backward();
  CHECK(max_diff(x.grad(), x2.grad()) < 1e-12);
  for (auto& [k, v] : p) CHECK_MESSAGE(max_diff(v.grad(), q[k].grad()) < 1e-12, k);
}

TEST_CASE("bridge: the autograd graph keeps the plugin library loaded") {
  torch::Tensor x = torch::randn({1, 3, 4}, torch::kFloat64).requires_grad_(true), y;
  std::vector<torch::Tensor> params;
  {
    Registry r;
    r.add_file(test::test_plugin("prefix_mean"));
    auto inst = PluginInstance::create(r.impls()[0], 4, 8, "{}");
    params = inst->init_params(torch::kFloat64, torch::kCPU, 1, 0.5);
    y = inst->forward(x, params).y;
  }  // registry, library handle and instance are gone; only the graph holds them
  y.sum().backward();
  CHECK(x.grad().defined());
  CHECK(torch::isfinite(x.grad()).all().item<bool>());
}

TEST_CASE("bridge: modifying a parameter between forward and backward is detected") {
  Registry r;
  r.add_file(test::test_plugin("prefix_mean"));
  auto inst = PluginInstance::create(r.impls()[0], 4, 8, "{}");
  auto params = inst->init_params(torch::kFloat64, torch::kCPU, 1, 0.5);
  auto y = inst->forward(torch::randn({1, 3, 4}, torch::kFloat64), params).y;
  {
    torch::NoGradGuard ng;
    params[0].add_(1.0);
  }
  CHECK_THROWS_WITH(y.sum().backward(), doctest::Contains("modified by an inplace operation"));
}
