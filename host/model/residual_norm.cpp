#include "model/residual_norm.hpp"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>

namespace mixlab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Row statistics and weight gradients accumulate in float (double for double inputs).
torch::ScalarType accumulation_type(torch::ScalarType t) { return t == torch::kDouble ? torch::kDouble : torch::kFloat; }

// Rows split into at most one block per thread; each block sums its own weight gradients.
struct RowBlocks {
  int64_t rows, per_block, count;
  explicit RowBlocks(int64_t n, int64_t d) : rows(n) {
    const int64_t min_rows = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, d));
    count = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (n + min_rows - 1) / min_rows));
    per_block = (n + count - 1) / count;
  }
  template <class F>
  void run(const F& body) const {
    at::parallel_for(0, count, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) body(b, b * per_block, std::min(rows, (b + 1) * per_block));
    });
  }
};

// Forward of rows [r0, r1): s = h + branch (rounded to the storage type, as the reference's add
// is), then y; rstd and mu per row (mu only when centred).
template <class T, class Acc = at::opmath_type<T>>
void forward_rows(const T* h, const T* branch, const Acc* w, const Acc* b, T* s, T* y, Acc* mu, Acc* rstd, int64_t d,
                  double eps, bool centred, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T *hr = h + r * d, *br = branch + r * d;
    T *sr = s + r * d, *yr = y + r * d;
    Acc mean = 0;
    for (int64_t j = 0; j < d; ++j) {
      sr[j] = static_cast<T>(static_cast<Acc>(hr[j]) + static_cast<Acc>(br[j]));
      mean += static_cast<Acc>(sr[j]);
    }
    mean = centred ? mean / static_cast<Acc>(d) : Acc(0);
    Acc sq = 0;
    for (int64_t j = 0; j < d; ++j) {
      Acc c = static_cast<Acc>(sr[j]) - mean;
      sq += c * c;
    }
    Acc r_std = Acc(1) / std::sqrt(sq / static_cast<Acc>(d) + static_cast<Acc>(eps));
    for (int64_t j = 0; j < d; ++j) {
      Acc v = (static_cast<Acc>(sr[j]) - mean) * r_std * w[j];
      yr[j] = static_cast<T>(b ? v + b[j] : v);
    }
    mu[r] = mean, rstd[r] = r_std;
  }
}

// Backward of rows [r0, r1) (formulas in the header); dw, db: this block's sums.
template <class T, class Acc = at::opmath_type<T>>
void backward_rows(const T* s, const T* dy, const T* ds, const Acc* w, const Acc* mu, const Acc* rstd, T* dsum, Acc* dw,
                   Acc* db, int64_t d, bool centred, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T *sr = s + r * d, *dyr = dy + r * d, *dsr = ds ? ds + r * d : nullptr;
    T* out = dsum + r * d;
    const Acc m = mu[r], rs = rstd[r];
    Acc mean_g = 0, mean_gx = 0;
    for (int64_t j = 0; j < d; ++j) {
      Acc g = static_cast<Acc>(dyr[j]) * w[j];
      Acc xhat = (static_cast<Acc>(sr[j]) - m) * rs;
      mean_g += g, mean_gx += g * xhat;
      dw[j] += static_cast<Acc>(dyr[j]) * xhat;
      if (db) db[j] += static_cast<Acc>(dyr[j]);
    }
    mean_g = centred ? mean_g / static_cast<Acc>(d) : Acc(0);
    mean_gx /= static_cast<Acc>(d);
    for (int64_t j = 0; j < d; ++j) {
      Acc g = static_cast<Acc>(dyr[j]) * w[j];
      Acc xhat = (static_cast<Acc>(sr[j]) - m) * rs;
      Acc v = rs * (g - mean_g - xhat * mean_gx);
      out[j] = static_cast<T>(dsr ? v + static_cast<Acc>(dsr[j]) : v);
    }
  }
}

struct AddNormFunction : public torch::autograd::Function<AddNormFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& branch,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps) {
    const bool centred = bias.numel() > 0;
    const auto dtype = at::result_type(h, branch);
    const int64_t d = h.size(-1), n = h.numel() / std::max<int64_t>(1, d);
    TORCH_CHECK(branch.sizes() == h.sizes(), "add_norm: branch ", branch.sizes(), " differs from h ", h.sizes());
    TORCH_CHECK(weight.dim() == 1 && weight.size(0) == d, "add_norm: weight must be (", d, "), got ", weight.sizes());
    const auto acc = accumulation_type(dtype);
    auto hc = h.to(dtype).contiguous(), bc = branch.to(dtype).contiguous();
    auto w = weight.to(acc).contiguous();
    auto b = centred ? bias.to(acc).contiguous() : torch::Tensor();
    auto s = torch::empty_like(hc), y = torch::empty_like(hc);
    auto stats = torch::empty({2, n}, h.options().dtype(acc));  // mu, rstd
    RowBlocks blocks(n, d);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "add_norm_forward", [&] {
      using Acc = at::opmath_type<scalar_t>;
      blocks.run([&](int64_t, int64_t r0, int64_t r1) {
        forward_rows<scalar_t>(hc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(), w.const_data_ptr<Acc>(),
                               centred ? b.const_data_ptr<Acc>() : nullptr, s.mutable_data_ptr<scalar_t>(),
                               y.mutable_data_ptr<scalar_t>(), stats[0].mutable_data_ptr<Acc>(),
                               stats[1].mutable_data_ptr<Acc>(), d, eps, centred, r0, r1);
      });
    });
    ctx->save_for_backward({s, weight, stats});
    ctx->saved_data["centred"] = centred;
    return {s, y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &weight = saved[1], &stats = saved[2];
    const bool centred = ctx->saved_data["centred"].toBool();
    const int64_t d = s.size(-1), n = s.numel() / std::max<int64_t>(1, d);
    auto ds = grads[0].defined() ? grads[0].to(s.scalar_type()).contiguous() : torch::Tensor();
    if (!grads[1].defined()) {  // normed unused: the add alone
      auto g = ds.defined() ? ds : torch::zeros_like(s);
      return {g, g, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    auto dy = grads[1].to(s.scalar_type()).contiguous();
    auto w = weight.to(stats.scalar_type()).contiguous();
    auto dsum = torch::empty_like(s);
    RowBlocks blocks(n, d);
    auto partial = torch::zeros({2, blocks.count, d}, stats.options());  // dw, db of each block
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, s.scalar_type(), "add_norm_backward", [&] {
      using Acc = at::opmath_type<scalar_t>;
      blocks.run([&](int64_t block, int64_t r0, int64_t r1) {
        backward_rows<scalar_t>(s.const_data_ptr<scalar_t>(), dy.const_data_ptr<scalar_t>(),
                                ds.defined() ? ds.const_data_ptr<scalar_t>() : nullptr, w.const_data_ptr<Acc>(),
                                stats[0].const_data_ptr<Acc>(), stats[1].const_data_ptr<Acc>(),
                                dsum.mutable_data_ptr<scalar_t>(), partial[0][block].mutable_data_ptr<Acc>(),
                                centred ? partial[1][block].mutable_data_ptr<Acc>() : nullptr, d, centred, r0, r1);
      });
    });
    auto sums = partial.sum(1);  // over blocks, in a fixed order
    auto dw = sums[0].to(weight.scalar_type());
    auto db = centred ? sums[1].to(weight.scalar_type()) : torch::Tensor();
    return {dsum, dsum, dw, db, torch::Tensor()};
  }
};

}  // namespace

AddNorm add_norm_reference(const torch::Tensor& h, const torch::Tensor& branch, const torch::Tensor& weight,
                           const torch::Tensor& bias, double eps) {
  auto s = h + branch;
  const int64_t d = s.size(-1);
  auto y = bias.defined() ? torch::layer_norm(s, {d}, weight, bias, eps) : torch::rms_norm(s, {d}, weight, eps);
  return {s, y};
}

AddNorm add_norm_fused(const torch::Tensor& h, const torch::Tensor& branch, const torch::Tensor& weight,
                       const torch::Tensor& bias, double eps) {
  // RMSNorm has no bias; an autograd Function's inputs must all be defined tensors, so an
  // empty one stands in for it.
  auto out = AddNormFunction::apply(h, branch, weight, bias.defined() ? bias : torch::empty({0}, weight.options()), eps);
  return {out[0], out[1]};
}

}  // namespace mixlab
