// Rotary position embedding (RoPE), Hugging Face's rotate-half convention:
// the first `rotary_dim` channels of a head are split into halves (x1, x2)
// and rotated as (x1 cos - x2 sin, x2 cos + x1 sin); the rest pass through
// (partial rotary). Linear scaling divides positions by the factor.
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::attention {

struct Rope {
  int64_t rotary_dim = 0;  // 0: no rotary embedding
  double theta = 10000.0;
  double scaling_factor = 1.0;

  bool enabled() const { return rotary_dim > 0; }

  // cos and sin tables (T, rotary_dim) for float64 `positions` (T,). The angles
  // are formed in float64 whatever the compute dtype, so shifted positions
  // give the same rotations up to float64 rounding.
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& positions, torch::ScalarType dtype) const {
    auto opts = positions.options().dtype(torch::kFloat64);
    auto inv_freq = torch::pow(theta, -torch::arange(0, rotary_dim, 2, opts) / static_cast<double>(rotary_dim));
    auto freqs = torch::outer(positions.to(torch::kFloat64) / scaling_factor, inv_freq);
    auto angles = torch::cat({freqs, freqs}, -1);
    return {angles.cos().to(dtype), angles.sin().to(dtype)};
  }

  // x (B, H, T, head_dim) rotated by tables (T, rotary_dim).
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
    auto rot = x.narrow(-1, 0, rotary_dim);
    auto half = rotary_dim / 2;
    auto rotated_half = torch::cat({-rot.narrow(-1, half, half), rot.narrow(-1, 0, half)}, -1);
    auto out = rot * cos + rotated_half * sin;
    if (rotary_dim == x.size(-1)) return out;
    return torch::cat({out, x.narrow(-1, rotary_dim, x.size(-1) - rotary_dim)}, -1);
  }
};

}  // namespace mixlab::attention
