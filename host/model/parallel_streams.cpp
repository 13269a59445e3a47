#include "model/parallel_streams.hpp"

#include <cmath>

namespace mixlab {

int64_t parallel_streams_host_params(const ParallelStreams& spec, int64_t d) {
  const auto n = static_cast<int64_t>(spec.streams.size());
  int64_t params = 0, widths = 0;
  for (const auto& s : spec.streams) {
    if (s.width) params += s.width * d;
    widths += s.width_or(d);
  }
  if (spec.merge == "concat") params += d * widths;
  if (spec.merge == "gated") params += n * d * d + n * d;
  if (spec.merge == "cross_attn") params += 4 * d * d;
  return params;
}

double parallel_streams_host_flops(const ParallelStreams& spec, int64_t d_model, int64_t seq_len) {
  const double d = static_cast<double>(d_model), n = static_cast<double>(spec.streams.size());
  double flops = 0, widths = 0;
  for (const auto& s : spec.streams) {
    if (s.width) flops += 2.0 * d * static_cast<double>(s.width);
    widths += static_cast<double>(s.width_or(d_model));
  }
  if (spec.merge == "concat") flops += 2.0 * d * widths;
  if (spec.merge == "gated") flops += 2.0 * n * d * d;
  // q and o once, k and v per other stream; scores and values over (n - 1) (T + 1) / 2 keys on average.
  if (spec.merge == "cross_attn")
    flops += 2.0 * d * d * (2.0 + 2.0 * (n - 1)) + 2.0 * d * (n - 1) * static_cast<double>(seq_len + 1);
  return flops;
}

int64_t parallel_streams_cache_per_token(const ParallelStreams& spec, int64_t d_model) {
  return spec.merge == "cross_attn" ? 2 * (static_cast<int64_t>(spec.streams.size()) - 1) * d_model : 0;
}

namespace {

class ParallelStreamsBranch final : public Branch {
 public:
  ParallelStreamsBranch(size_t index, const ParallelStreams& spec,
                        const std::vector<std::shared_ptr<PluginInstance>>& mixers, const BlockContext& context)
      : prefix_("layers." + std::to_string(index)), spec_(spec), context_(context) {
    for (size_t k = 0; k < mixers.size(); ++k)  // seed offsets past the layer slots' (index * 2 + 0 or 1)
      streams_.push_back(make_plugin_branch(prefix_ + ".streams." + std::to_string(k) + ".mixer", mixers[k],
                                            index * 2 + (static_cast<uint64_t>(k + 1) << 32), context));
  }

  std::vector<BlockParam> extra_params(uint64_t seed, double init_std) const override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t d = context_.model().d_model, n = static_cast<int64_t>(spec_.streams.size());
    auto normal = [&](std::vector<int64_t> shape) { return torch::empty(shape, torch::kFloat32).normal_(0.0, init_std, gen); };
    std::vector<BlockParam> out;
    int64_t widths = 0;
    for (size_t k = 0; k < spec_.streams.size(); ++k) {
      const int64_t w = spec_.streams[k].width_or(d);
      widths += w;
      if (spec_.streams[k].width) out.push_back({stream_prefix(k) + ".in_proj.weight", normal({w, d}), true});
    }
    const std::string m = prefix_ + ".merge.";
    if (spec_.merge == "concat") out.push_back({m + "proj.weight", normal({d, widths}), true});
    if (spec_.merge == "gated") {
      out.push_back({m + "gate.weight", normal({n * d, d}), true});
      out.push_back({m + "gate.bias", torch::zeros({n * d}), false});
    }
    if (spec_.merge == "cross_attn")
      for (const char* p : {"q", "k", "v", "o"}) out.push_back({m + p + ".weight", normal({d, d}), true});
    return out;
  }

  torch::Tensor forward(const torch::Tensor& x, const BlockCall& call) const override {
    std::vector<torch::Tensor> ys;
    for (size_t k = 0; k < streams_.size(); ++k) ys.push_back(streams_[k]->forward(input(k, x), call));
    return merge(x, ys, nullptr);
  }

  bool can_decode() const override {
    for (const auto& s : streams_)
      if (!s->can_decode()) return false;
    return true;
  }

  void add_states(BlockState& state, int64_t batch, torch::ScalarType dtype, torch::Device device) const override {
    for (const auto& s : streams_) s->add_states(state, batch, dtype, device);
    if (spec_.merge != "cross_attn") return;
    const int64_t heads = spec_.merge_heads, head_dim = context_.model().d_model / heads;
    for (size_t j = 1; j < streams_.size(); ++j)  // keys, values of stream j: (B, heads, 0, head_dim)
      for (int kv = 0; kv < 2; ++kv)
        state.caches.push_back(torch::zeros({batch, heads, 0, head_dim}, torch::TensorOptions().dtype(dtype).device(device)));
  }

  size_t n_states() const override { return streams_.size(); }

  torch::Tensor step(const torch::Tensor& x, BlockState& state, size_t first) const override {
    std::vector<torch::Tensor> ys;
    for (size_t k = 0; k < streams_.size(); ++k) ys.push_back(streams_[k]->step(input(k, x), state, first + k));
    return merge(x, ys, &state.caches);
  }

 private:
  std::string stream_prefix(size_t k) const { return prefix_ + ".streams." + std::to_string(k); }

  torch::Tensor input(size_t k, const torch::Tensor& x) const {
    if (!spec_.streams[k].width) return x;
    return torch::linear(x, context_.param(stream_prefix(k) + ".in_proj.weight"));
  }

  // The merged branch; `caches` (decode): the cross-attention's keys and values of earlier tokens.
  torch::Tensor merge(const torch::Tensor& x, const std::vector<torch::Tensor>& ys, std::vector<torch::Tensor>* caches) const {
    const std::string m = prefix_ + ".merge.";
    if (spec_.merge == "concat") return torch::linear(torch::cat(ys, -1), context_.param(m + "proj.weight"));
    if (spec_.merge == "add") {
      auto y = ys[0];
      for (size_t k = 1; k < ys.size(); ++k) y = y + ys[k];
      return y;
    }
    if (spec_.merge == "gated") {
      const int64_t d = context_.model().d_model;
      auto gates = torch::sigmoid(torch::linear(x, context_.param(m + "gate.weight"), context_.param(m + "gate.bias")));
      auto y = gates.narrow(-1, 0, d) * ys[0];
      for (size_t k = 1; k < ys.size(); ++k) y = y + gates.narrow(-1, static_cast<int64_t>(k) * d, d) * ys[k];
      return y;
    }
    return ys[0] + cross_attention(ys, caches);
  }

  // MHA(q = y_0, k = v = y_1 .. y_{n-1}) W_o^T, causal across streams.
  torch::Tensor cross_attention(const std::vector<torch::Tensor>& ys, std::vector<torch::Tensor>* caches) const {
    const std::string m = prefix_ + ".merge.";
    const int64_t B = ys[0].size(0), T = ys[0].size(1), d = context_.model().d_model, H = spec_.merge_heads;
    auto heads = [&](const torch::Tensor& y, const char* p) {  // (B, T, d) -> (B, H, T, d / H)
      return torch::linear(y, context_.param(m + p + ".weight")).view({B, -1, H, d / H}).transpose(1, 2);
    };
    auto q = heads(ys[0], "q");
    std::vector<torch::Tensor> keys, values;
    for (size_t j = 1; j < ys.size(); ++j) {
      auto k = heads(ys[j], "k"), v = heads(ys[j], "v");
      if (caches) {
        auto& ck = (*caches)[2 * (j - 1)];
        auto& cv = (*caches)[2 * (j - 1) + 1];
        ck = torch::cat({ck, k.to(ck.scalar_type())}, 2);
        cv = torch::cat({cv, v.to(cv.scalar_type())}, 2);
        k = ck.to(q.scalar_type()), v = cv.to(q.scalar_type());
      }
      keys.push_back(k), values.push_back(v);
    }
    // Query i sits at position offset + i (decode continues after the cached tokens); it sees keys s <= that.
    const int64_t Tk = keys[0].size(2), offset = Tk - T;
    auto options = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
    auto visible = torch::arange(Tk, options).unsqueeze(0) <= (torch::arange(T, options) + offset).unsqueeze(1);
    auto mask = visible.repeat({1, static_cast<int64_t>(keys.size())});
    auto a = at::scaled_dot_product_attention(q, torch::cat(keys, 2), torch::cat(values, 2), mask);
    return torch::linear(a.transpose(1, 2).reshape({B, T, d}), context_.param(m + "o.weight"));
  }

  std::string prefix_;  // "layers.3"
  ParallelStreams spec_;
  const BlockContext& context_;
  std::vector<std::unique_ptr<Branch>> streams_;
};

}  // namespace

std::unique_ptr<Branch> make_parallel_streams(size_t index, const ParallelStreams& spec,
                                              const std::vector<std::shared_ptr<PluginInstance>>& mixers,
                                              const BlockContext& context) {
  return std::make_unique<ParallelStreamsBranch>(index, spec, mixers, context);
}

}  // namespace mixlab
