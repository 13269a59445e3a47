// The memory's running state: what a chunk-parallel scan and decode carry from
// one piece of the sequence to the next. The memory weights M_t, the momentum
// S_t, and the chunk-start weights M_c at which the current chunk's gradients
// are taken (equal to M_t at every chunk boundary; decode needs them when a
// step ends inside a chunk). Nothing grows with the sequence.
#pragma once

#include "common.hpp"

namespace mixlab::titans {

struct MemoryState : State {
  Weights weights;   // M_t, (B, H, out, in) per layer, compute dtype
  Weights momentum;  // S_t
  Weights anchor;    // M_c: the weights the current chunk's gradients are taken at
  int64_t tokens = 0;  // tokens of x~ consumed, the persistent prefix included

  bool started() const { return !weights.empty(); }

  // M_0 (the parameters, one copy per batch row), S_0 = 0, at position 0.
  static MemoryState initial(const TitansConfig& cfg, const Params& p, int64_t batch, torch::ScalarType dtype) {
    MemoryState s;
    for (const auto& name : cfg.memory_names()) {
      auto w = p[name].to(dtype).unsqueeze(0);
      s.weights.push_back(w.expand({batch, w.size(1), w.size(2), w.size(3)}));
      s.momentum.push_back(torch::zeros_like(s.weights.back()));
    }
    s.anchor = s.weights;
    return s;
  }

  int64_t values() const {
    int64_t n = 0;
    for (const auto* set : {&weights, &momentum, &anchor})
      for (const auto& t : *set) n += t.numel();
    return n;
  }
};

}  // namespace mixlab::titans
