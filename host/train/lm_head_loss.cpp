#include "train/lm_head_loss.hpp"

#include "train/evaluate.hpp"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

namespace mixlab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kIgnored = -100;

// The dtype of the head's matrix products: autocast's when it is on (what linear would do).
torch::ScalarType product_dtype(const torch::Tensor& features, const torch::Tensor& weight) {
  auto device = features.device().type();
  if (at::autocast::is_autocast_enabled(device)) return at::autocast::get_autocast_dtype(device);
  return at::result_type(features, weight);
}

// Float32 logits of rows [r0, r0 + n) of the features (n, vocab).
torch::Tensor chunk_logits(const torch::Tensor& rows, const torch::Tensor& weight_c) {
  return torch::mm(rows.to(weight_c.scalar_type()), weight_c.t()).to(torch::kFloat32);
}

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& features, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk) {
    // Autocast's dtype is read first: is_autocast_enabled() reads the very dispatch keys that the
    // guard then excludes, so that autocast does not re-cast our own dtypes below.
    const auto dtype = product_dtype(features, weight);
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    TORCH_CHECK(chunk > 0, "chunked_token_loss_sum: chunk_tokens must be > 0");
    const int64_t d = features.size(-1), n = features.numel() / std::max<int64_t>(1, d);
    auto x = features.reshape({n, d});
    auto t = targets.reshape({n});
    TORCH_CHECK(t.numel() == n, "chunked_token_loss_sum: ", targets.numel(), " targets for ", n, " feature rows");
    auto w = weight.to(dtype);
    auto lse = torch::empty({n}, features.options().dtype(torch::kFloat32));
    auto total = torch::zeros({}, features.options().dtype(torch::kFloat32));
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t len = std::min(chunk, n - r0);
      auto logits = chunk_logits(x.narrow(0, r0, len), w);
      auto tc = t.narrow(0, r0, len);
      auto scored = tc.ne(kIgnored);
      auto chunk_lse = logits.logsumexp(-1);
      auto picked = logits.gather(1, tc.clamp_min(0).unsqueeze(1)).squeeze(1);
      total += (chunk_lse - picked).masked_fill_(scored.logical_not(), 0).sum();
      lse.narrow(0, r0, len).copy_(chunk_lse);
    }
    ctx->save_for_backward({features, weight, targets, lse});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["weight_cast"] = w;  // one cast of the weight per step, as autocast's cache gives the reference
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &features = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto w = ctx->saved_data["weight_cast"].toTensor();
    const auto dtype = w.scalar_type();
    const int64_t d = features.size(-1), n = features.numel() / std::max<int64_t>(1, d);
    auto x = features.reshape({n, d});
    auto t = targets.reshape({n});
    const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    auto grad_x = want_x ? torch::empty({n, d}, features.options()) : torch::Tensor();
    auto grad_w = want_w ? torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32)) : torch::Tensor();
    auto g = grads[0].to(torch::kFloat32);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t len = std::min(chunk, n - r0);
      auto rows = x.narrow(0, r0, len);
      auto tc = t.narrow(0, r0, len);
      auto scored = tc.ne(kIgnored).unsqueeze(1);
      // d loss / d logits = softmax - one_hot(target), zero on ignored tokens, times the upstream gradient.
      auto p = chunk_logits(rows, w).sub_(lse.narrow(0, r0, len).unsqueeze(1)).exp_();
      p.scatter_add_(1, tc.clamp_min(0).unsqueeze(1), torch::full({len, 1}, -1.0f, p.options()));
      p.mul_(scored).mul_(g);
      auto pc = p.to(dtype);
      if (want_x) grad_x.narrow(0, r0, len).copy_(torch::mm(pc, w));
      if (want_w) grad_w += torch::mm(pc.t(), rows.to(dtype));
    }
    return {want_x ? grad_x.reshape(features.sizes()) : torch::Tensor(),
            want_w ? grad_w.to(weight.scalar_type()) : torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

int64_t loss_chunk_tokens(int64_t vocab_size) {
  constexpr int64_t kLogits = int64_t{32} << 20 >> 2;  // 32 MiB of float32
  return std::max<int64_t>(64, kLogits / std::max<int64_t>(1, vocab_size));
}

TokenLossSum chunked_token_loss_sum(const torch::Tensor& features, const torch::Tensor& weight,
                                    const torch::Tensor& targets, int64_t chunk_tokens) {
  auto sum = ChunkedCrossEntropy::apply(features, weight, targets, chunk_tokens);
  return {sum, targets.ne(kIgnored).sum().item<int64_t>()};
}

TokenLossSum lm_head_loss(const Model& model, const torch::Tensor& features, const torch::Tensor& targets, bool chunked) {
  if (chunked)
    return chunked_token_loss_sum(features, model.head_weight(), targets, loss_chunk_tokens(model.vocab_size()));
  return token_loss_sum(torch::linear(features, model.head_weight()), targets);
}

}  // namespace mixlab
