// A small, correct causal mixer the broken test plugins start from:
// y_t = W_out · mean(x_1..x_t) (a prefix mean followed by a projection).
#pragma once

#include <mixlab/plugin.hpp>

namespace mixlab::test {

inline torch::Tensor prefix_mean(const torch::Tensor& x) {
  auto counts = torch::arange(1, x.size(1) + 1, x.options()).view({1, -1, 1});
  return torch::cumsum(x, 1) / counts;
}

class PrefixMean : public Module {
 public:
  static ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "prefix_mean", "default", "1.0.0", "test mixer"}; }
  explicit PrefixMean(const CreateArgs& args) : d_(args.d_model), scale_(args.config.get<double>("scale", 1.0)) {
    if (scale_ <= 0) throw config_error("scale", "must be > 0");
  }
  std::vector<ParamSpec> params() const override { return {ParamSpec::normal("w", {d_, d_}, "projection")}; }
  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    return {torch::linear(prefix_mean(x), p["w"]) * scale_};
  }

 protected:
  int64_t d_;
  double scale_;
};

}  // namespace mixlab::test
