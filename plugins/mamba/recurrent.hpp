// `recurrent`: the SSD core as the sequential scan, one token at a time. The
// naive reference the other implementations are held to; O(T) steps.
#pragma once

#include "block.hpp"

namespace mixlab::mamba {

// S_t = exp(dt_t A) S_{t-1} + dt_t x_t ⊗ B_t, y_t = S_t C_t (shapes in common.hpp).
inline SsdResult ssd_recurrent(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A,
                               const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& initial_state) {
  const int64_t heads_per_group = x.size(2) / B.size(2);
  // Split time once: unbind's backward is one stack, a select per step would allocate (b, T, ...) each.
  auto B_heads = B.repeat_interleave(heads_per_group, 2).unbind(1);            // T x (b, h, n)
  auto C_heads = C.repeat_interleave(heads_per_group, 2).unsqueeze(-1).unbind(1);  // T x (b, h, n, 1)
  auto decay = torch::exp(dt * A).unsqueeze(-1).unsqueeze(-1).unbind(1);     // T x (b, h, 1, 1)
  auto input = (x * dt.unsqueeze(-1)).unsqueeze(-1).unbind(1);                // T x (b, h, p, 1)
  auto state = initial_or_zeros(initial_state, x, B);                         // (b, h, p, n)
  std::vector<torch::Tensor> ys;
  ys.reserve(x.size(1));
  for (int64_t t = 0; t < x.size(1); ++t) {
    state = state * decay[t] + input[t] * B_heads[t].unsqueeze(-2);
    ys.push_back(torch::matmul(state, C_heads[t]).squeeze(-1));
  }
  return {torch::stack(ys, 1), state};
}

class MambaRecurrent final : public Mamba2Block {
 public:
  static ImplInfo info() {
    return impl_info("recurrent", "Mamba-2 block, SSD core as the sequential scan (naive reference)");
  }
  using Mamba2Block::Mamba2Block;

  SsdResult ssd(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A, const torch::Tensor& B,
                const torch::Tensor& C, const torch::Tensor& initial_state) const override {
    return ssd_recurrent(x, dt, A, B, C, initial_state);
  }

  // Per token: decay the state, add dt x ⊗ B, read it out with C (h p n each, multiply-add = 2).
  double ssd_flops_per_token(int64_t) const override {
    const auto& m = config();
    return 5.0 * m.n_heads() * m.headdim * m.d_state;
  }
};

}  // namespace mixlab::mamba
