// Parallel streams: two or more mixers side by side on a layer's normed input x,
// merged into the one branch that takes the mixer's place (a template's `streams`
// and `merge`; the ffn and the residual are the block's, sequential or parallel).
// Stream k runs its mixer at its width w_k (default d_model) on
//   x_k = x                 (w_k = d_model)
//   x_k = x W_in,k^T        (W_in,k (w_k, d_model): layers.<i>.streams.<k>.in_proj.weight)
// giving y_k = mixer_k(x_k), parameters layers.<i>.streams.<k>.mixer.<name>. The merges:
//   concat      y = [y_0; ...; y_{n-1}] W_p^T, W_p (d_model, sum_k w_k): layers.<i>.merge.proj.weight.
//   add         y = sum_k y_k.
//   gated       y = sum_k g_k * y_k, g_k = sigmoid(x W_g,k^T + b_g,k): a gate per stream, token and
//               channel, computed from the streams' shared input (W_g (n d_model, d_model) and b_g
//               (n d_model): layers.<i>.merge.gate.weight/.bias, stream k's rows k d .. (k+1) d).
//               The gated fusion of Arevalo et al. 2017 (Gated Multimodal Units, arXiv 1702.01992:
//               z = sigmoid(W_z [x_1; x_2]), h = z h_1 + (1 - z) h_2; here the streams share one
//               input, so the gate reads x), with one independent sigmoid per stream instead of z
//               and 1 - z, so it extends to n streams and can also scale the branch. Hymba's fusion
//               (Dong et al. 2024, arXiv 2411.13676: W_out(beta_1 norm(attn) + beta_2 norm(ssm)),
//               learned per-channel beta) is a token-independent weighting of the same kind.
//   cross_attn  y = y_0 + MHA(q = y_0 W_q^T; k = y_j W_k^T, v = y_j W_v^T for every j >= 1) W_o^T:
//               stream 0 attends to the other streams, causally (query t sees positions <= t of each
//               other stream, one softmax over all of them), merge_heads heads of d_model / heads;
//               W_q, W_k, W_v, W_o (d_model, d_model): layers.<i>.merge.q/k/v/o.weight (W_k, W_v
//               shared by the other streams). Encoder-decoder attention (Vaswani et al. 2017,
//               section 3.2.3) between streams, made causal, with a residual on the query stream.
// add, gated and cross_attn need every stream at width d_model (the loader refuses other widths).
//
// Decode: each stream's mixer steps its own state; cross_attn keeps a cache of the other streams'
// keys and values (2 (n - 1) d_model values per token, growing with the context), so the block
// decodes whenever every stream's mixer does.
#pragma once

#include "model/branch.hpp"

namespace mixlab {

std::unique_ptr<Branch> make_parallel_streams(size_t index, const ParallelStreams& spec,
                                              const std::vector<std::shared_ptr<PluginInstance>>& mixers,
                                              const BlockContext& context);

// Host parameters of the streams: input projections and the merge's.
int64_t parallel_streams_host_params(const ParallelStreams& spec, int64_t d_model);
// Forward FLOPs per token of the input projections and the merge (the mixers' are their plugins').
double parallel_streams_host_flops(const ParallelStreams& spec, int64_t d_model, int64_t seq_len);
// Values per token that decode caches besides the mixers' states (cross_attn's keys and values).
int64_t parallel_streams_cache_per_token(const ParallelStreams& spec, int64_t d_model);

}  // namespace mixlab
