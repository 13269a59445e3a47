// The training loss: the LM head applied to the model's features and the
// cross-entropy against the targets, summed over scored tokens (target != -100).
//
// Two forms, chosen by training.fused. The reference forms the logits of the
// whole micro-batch (B, T, vocab), converts them to float32 and calls
// cross_entropy; autograd keeps the logits and the log-probabilities for
// backward. The chunked form is one autograd node that walks the tokens in
// chunks: logits of a chunk -> float32 -> log-sum-exp -> loss; it keeps only
// the features and one log-sum-exp per token, and backward recomputes each
// chunk's logits to form softmax - one_hot and its two products. Its matrix
// products run in the autocast dtype when autocast is on (as the reference's
// linear does), its softmax in float32, the weight gradient summed in float32.
// Tests: tests/unit/test_fused_host_ops.cpp.
#pragma once

#include "model/model.hpp"

#include <torch/torch.h>

#include <utility>

namespace mixlab {

// (sum of the cross-entropy over scored tokens, number of scored tokens).
using TokenLossSum = std::pair<torch::Tensor, int64_t>;

// Tokens per chunk: at most 32 MiB of float32 logits (at least 64 tokens). With the byte
// vocabulary (256) that is 32768 tokens, a whole micro-batch of 16 x 128 in one chunk.
int64_t loss_chunk_tokens(int64_t vocab_size);

// features (..., d_model), weight (vocab, d_model), targets (...) of int64.
TokenLossSum chunked_token_loss_sum(const torch::Tensor& features, const torch::Tensor& weight,
                                    const torch::Tensor& targets, int64_t chunk_tokens);

// The loss of a forward_features output: chunked when `chunked`, else full logits and token_loss_sum.
TokenLossSum lm_head_loss(const Model& model, const torch::Tensor& features, const torch::Tensor& targets, bool chunked);

}  // namespace mixlab
