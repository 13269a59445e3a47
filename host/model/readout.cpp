#include "model/readout.hpp"

namespace mixlab {
namespace {

// The norms of the decoder, in parameter order: before each linear layer, and the final one.
const char* const kNorms[] = {"readout.norm1", "readout.norm2", "readout.norm"};

class LmReadout final : public Readout {
 public:
  std::vector<BlockParam> params(uint64_t, double) const override { return {}; }
  torch::Tensor forward(const torch::Tensor& features) const override { return features; }
  std::string non_causal() const override { return ""; }
};

class AutoencoderReadout final : public Readout {
 public:
  explicit AutoencoderReadout(const BlockContext& context) : context_(context) {}

  std::vector<BlockParam> params(uint64_t seed, double init_std) const override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t d = context_.model().d_model;
    std::vector<BlockParam> out;
    auto norm = [&](const std::string& prefix) {
      for (auto& p : norm_params(prefix, context_.model())) out.push_back(std::move(p));
    };
    auto linear = [&](const std::string& prefix) {
      out.push_back({prefix + ".weight", torch::empty({d, d}, torch::kFloat32).normal_(0.0, init_std, gen), true});
      out.push_back({prefix + ".bias", torch::zeros({d}), false});
    };
    norm(kNorms[0]);
    linear("readout.fc1");
    norm(kNorms[1]);
    linear("readout.fc2");
    norm(kNorms[2]);
    return out;
  }

  torch::Tensor forward(const torch::Tensor& features) const override {
    const int64_t T = features.size(1), d = features.size(2);
    auto z = features.narrow(1, T - 1, 1) + positions(T, d, features.options());  // (B, T, d)
    auto layer = [&](const torch::Tensor& x, const std::string& norm, const std::string& fc) {
      return torch::gelu(torch::linear(context_.norm(x, norm), context_.param(fc + ".weight"), context_.param(fc + ".bias")));
    };
    auto u = layer(layer(z, kNorms[0], "readout.fc1"), kNorms[1], "readout.fc2");
    return context_.norm(u, kNorms[2]);
  }

  std::string non_causal() const override {
    return "model.readout = \"autoencoder\" reconstructs every position from the last token's features: its "
           "logits at position t are token t of the whole sequence, not a prediction of token t + 1";
  }

 private:
  // P (1, T, d): sin(t w_i) in the first half, cos(t w_i) in the second, w_i = 10000^(-i / (d/2 - 1)).
  static torch::Tensor positions(int64_t T, int64_t d, const torch::TensorOptions& options) {
    const auto f32 = options.dtype(torch::kFloat32);
    auto omega = torch::pow(10000.0, -torch::arange(d / 2, f32) / static_cast<double>(d / 2 - 1));
    auto angles = torch::arange(T, f32).unsqueeze(1) * omega.unsqueeze(0);
    return torch::cat({angles.sin(), angles.cos()}, 1).unsqueeze(0).to(options.dtype());
  }

  const BlockContext& context_;
};

}  // namespace

std::unique_ptr<Readout> make_readout(const BlockContext& context) {
  if (context.model().readout == "autoencoder") return std::make_unique<AutoencoderReadout>(context);
  return std::make_unique<LmReadout>();
}

int64_t readout_params(const ExperimentConfig::Model& model) {
  if (model.readout != "autoencoder") return 0;
  const int64_t d = model.d_model, norm = norm_param_count(model);
  return 3 * norm + 2 * (d * d + d);
}

double readout_forward_flops(const ExperimentConfig::Model& model) {
  if (model.readout != "autoencoder") return 0.0;
  return 2.0 * 2.0 * static_cast<double>(model.d_model * model.d_model);  // two (d, d) products per position
}

}  // namespace mixlab
