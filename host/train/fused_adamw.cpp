#include "train/fused_adamw.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace mixlab {
namespace {

// Σ x² over a contiguous float32 CPU tensor: chunks of a fixed size summed in parallel, each in 16
// float lanes (vectorised without reordering a single sum), then added in chunk order in float64,
// so the result does not depend on the thread count (bit-identical resume at any threads).
double sum_of_squares(const torch::Tensor& t) {
  constexpr int64_t kChunk = 1 << 16, kLanes = 16;
  const float* x = t.const_data_ptr<float>();
  const int64_t n = t.numel(), chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk), whole = lo + (hi - lo) / kLanes * kLanes;
      float lanes[kLanes] = {};
      for (int64_t i = lo; i < whole; i += kLanes)
        for (int64_t k = 0; k < kLanes; ++k) lanes[k] += x[i + k] * x[i + k];
      double sum = 0;
      for (float lane : lanes) sum += lane;
      for (int64_t i = whole; i < hi; ++i) sum += static_cast<double>(x[i]) * x[i];
      partial[static_cast<size_t>(c)] = sum;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

void fused_adamw_step(torch::optim::AdamW& optimizer, double grad_factor) {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "fused_adamw_step: amsgrad is not used by the trainer");
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = optimizer.state()[p.unsafeGetTensorImpl()];
      if (!slot) {  // first step of this parameter: what AdamW::step creates
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      // The kernel reads each step count from a float tensor (exact up to 2^24 steps).
      steps.push_back(torch::full({}, static_cast<double>(state.step()), torch::kFloat32));
      params.push_back(p);
      grads.push_back(p.grad().is_contiguous() ? p.grad() : p.grad().contiguous());
      exp_avgs.push_back(state.exp_avg());
      exp_avg_sqs.push_back(state.exp_avg_sq());
    }
    if (params.empty()) continue;
    std::optional<torch::Tensor> grad_scale;  // the kernel divides the gradients by it
    if (grad_factor != 1.0) grad_scale = torch::full({}, 1.0 / grad_factor, params[0].options().dtype(torch::kFloat32));
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, o.lr(),
                      std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(), /*amsgrad=*/false,
                      /*maximize=*/false, grad_scale);
  }
}

double gradient_norm(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> others;  // not float32 on the CPU: ATen's multi-tensor norm
  double squares = 0;
  for (const auto& p : parameters) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (g.device().is_cpu() && g.scalar_type() == torch::kFloat32 && g.is_contiguous()) squares += sum_of_squares(g);
    else others.push_back(g);
  }
  if (!others.empty())
    squares += torch::stack(at::_foreach_norm(others, 2)).to(torch::kFloat64).square().sum().item<double>();
  return std::sqrt(squares);
}

double clip_factor(double norm, double max_norm) { return std::min(1.0, max_norm / (norm + 1e-6)); }

}  // namespace mixlab
