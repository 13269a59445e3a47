#include "train/mtp_loss.hpp"

#include "model/mtp_head.hpp"
#include "train/lm_head_loss.hpp"

namespace mixlab {

torch::Tensor mtp_objective(const Model& model, const torch::Tensor& stream, const torch::Tensor& inputs,
                            const torch::Tensor& targets, bool chunked, bool training, uint64_t seed,
                            const std::function<double(int64_t)>& tokens_for_mean, ModelOutput& out) {
  const MtpHead& mtp = *model.mtp();
  auto heads = mtp.forward(model, stream, inputs, training, seed);
  out.sides.insert(out.sides.end(), heads.sides.begin(), heads.sides.end());
  out.aux_loss = out.aux_loss + heads.aux_loss;
  const int64_t T = targets.size(1);
  auto total = torch::zeros({}, stream.options().dtype(torch::kFloat32));
  for (int64_t k = 1; k <= mtp.depth(); ++k) {
    // Module k at position i predicts t_{i+k+1} = targets[i + k].
    auto [sum, count] = lm_head_loss(model, heads.features[k - 1], targets.narrow(1, k, T - k), chunked);
    auto loss = sum / std::max(1.0, tokens_for_mean(count));
    out.sides.push_back(SideOutput{"mtp." + std::to_string(k) + "/loss", loss.detach(), 0.0, false});
    total = total + loss;
  }
  return total * (model.config().model.mtp.loss_weight / static_cast<double>(mtp.depth()));
}

}  // namespace mixlab
