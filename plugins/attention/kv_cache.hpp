// The decode state: keys (after RoPE) and values of the tokens seen so far.
// Global attention appends; a sliding window of W keeps a ring buffer of W
// slots, token at position t in slot t mod W. Each slot remembers its
// position, so attention over the cache needs no particular slot order.
#pragma once

#include "common.hpp"

namespace mixlab::attention {

struct KvCache : State {
  torch::Tensor k, v;       // (B, n_kv_heads, slots, head_dim)
  torch::Tensor positions;  // (slots,) int64; empty ring slots hold a position no window reaches
  int64_t length = 0;       // tokens seen

  KvCache(const AttentionConfig& cfg, int64_t batch, const torch::TensorOptions& options)
      : window_(cfg.window) {
    const int64_t slots = window_.value_or(0);
    k = torch::zeros({batch, cfg.n_kv_heads, slots, cfg.head_dim}, options);
    v = torch::zeros_like(k);
    positions = torch::full({slots}, std::numeric_limits<int64_t>::min() / 2, options.dtype(torch::kLong));
  }

  // What new tokens at `new_positions` attend over: the cache followed by
  // themselves, as (k, v, positions).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> with(const torch::Tensor& k_new, const torch::Tensor& v_new,
                                                               const torch::Tensor& new_positions) const {
    return {torch::cat({k, k_new}, 2), torch::cat({v, v_new}, 2), torch::cat({positions, new_positions})};
  }

  // Stores the new tokens, evicting (in a ring) those that left the window.
  void append(const torch::Tensor& k_new, const torch::Tensor& v_new, const torch::Tensor& new_positions) {
    const int64_t n = k_new.size(2);
    length += n;
    if (!window_) {
      std::tie(k, v, positions) = with(k_new, v_new, new_positions);
      return;
    }
    const int64_t keep = std::min(n, *window_);
    auto kept = new_positions.narrow(0, n - keep, keep);
    auto slots = kept.remainder(*window_);
    k.index_copy_(2, slots, k_new.narrow(2, n - keep, keep));
    v.index_copy_(2, slots, v_new.narrow(2, n - keep, keep));
    positions.index_copy_(0, slots, kept);
  }

 private:
  std::optional<int64_t> window_;
};

}  // namespace mixlab::attention
