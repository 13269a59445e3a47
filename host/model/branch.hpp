// A Branch is what one slot of a block adds to the residual stream, computed from
// the slot's normed input x (B, T, d_model): a plugin (a mixer or an FFN), or
// parallel streams of mixers merged into one (model/parallel_streams.hpp). The
// blocks (model/block.hpp) decide where branches meet the stream; a branch only
// computes, in the forward and in decode.
#pragma once

#include "model/block.hpp"

namespace mixlab {

class Branch {
 public:
  virtual ~Branch() = default;
  virtual torch::Tensor forward(const torch::Tensor& x, const BlockCall& call) const = 0;
  // Host parameters besides its plugins' (a merge's projection), initialised from `seed`.
  virtual std::vector<BlockParam> extra_params(uint64_t /*seed*/, double /*init_std*/) const { return {}; }
  virtual bool can_decode() const = 0;
  // Appends the branch's decode states to the block's.
  virtual void add_states(BlockState& state, int64_t batch, torch::ScalarType dtype, torch::Device device) const = 0;
  // How many of the block's mixer states it uses (its mixers').
  virtual size_t n_states() const = 0;
  // Continues the sequences with x; its mixer states start at state.mixers[first].
  virtual torch::Tensor step(const torch::Tensor& x, BlockState& state, size_t first) const = 0;
};

// A plugin on x, its parameters "<prefix>.<name>" ("layers.3.mixer.wq") and its side outputs
// recorded as "<prefix>/<side>". `seed_offset` tells its forward's random draws from other plugins'.
std::unique_ptr<Branch> make_plugin_branch(const std::string& prefix, std::shared_ptr<PluginInstance> instance,
                                           uint64_t seed_offset, const BlockContext& context);

}  // namespace mixlab
