// RetNet multi-scale retention: the config and the ONE parameter layout that
// `parallel`, `recurrent` and `chunkwise` share (so they swap on the same
// weights), plus the pieces around the retention core: per-head decays, the
// torchscale rotation of q and k, the per-head group norm, the gate.
//
// Tensor convention inside the plugin: heads at dim -3, i.e. q, k are
// (..., H, L, d_k), v and outputs (..., H, L, d_v), states (..., H, d_k, d_v).
#pragma once

#include <mixlab/plugin.hpp>

#include <cmath>
#include <limits>
#include <optional>

namespace mixlab::retnet {

using torch::Tensor;

// The retention core runs in float64 for float64 inputs and in float32
// otherwise: bfloat16 decay powers and long score sums lose too much.
inline torch::ScalarType compute_dtype(torch::ScalarType input) {
  return input == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// γ_h = 1 - 2^(-5-h), exact in double for every realistic head count.
inline double default_decay(int64_t head) { return 1.0 - std::ldexp(1.0, static_cast<int>(-5 - head)); }

struct Settings {
  int64_t d_model = 0;
  int64_t n_heads = 4;
  double value_factor = 2.0;
  int64_t chunk_size = 64;
  std::string gate = "swish";
  double norm_eps = 1e-6;
  std::vector<double> decays;  // one per head
  int64_t value_dim = 0;       // d_model * value_factor
  int64_t key_head_dim = 0;    // d_model / n_heads
  int64_t value_head_dim = 0;  // value_dim / n_heads

  static Settings parse(const CreateArgs& args) {
    const Config& c = args.config;
    Settings s;
    s.d_model = args.d_model;
    s.n_heads = c.get_int("n_heads", 4);
    s.value_factor = c.get<double>("value_factor", 2.0);
    s.chunk_size = c.get_int("chunk_size", 64);
    s.gate = c.get_choice("gate", "swish", {"swish", "gelu", "sigmoid"});
    s.norm_eps = c.get<double>("norm_eps", 1e-6);
    auto decays = c.get_optional<std::vector<double>>("decays");
    c.finish();

    if (s.d_model < 1) throw config_error("d_model", "must be >= 1, got " + std::to_string(s.d_model));
    if (s.d_model % s.n_heads != 0 || (s.d_model / s.n_heads) % 2 != 0)
      throw config_error("n_heads", "must divide d_model = " + std::to_string(s.d_model) +
                                        " into an even head dimension (rotation pairs), got " + std::to_string(s.n_heads));
    double value_dim = static_cast<double>(s.d_model) * s.value_factor;
    if (!(s.value_factor > 0 && s.value_factor <= 64) || value_dim != std::floor(value_dim) ||
        static_cast<int64_t>(value_dim) % s.n_heads != 0)
      throw config_error("value_factor", "must be in (0, 64] with d_model * value_factor a multiple of n_heads, got " +
                                             std::to_string(s.value_factor));
    if (!(s.norm_eps > 0 && s.norm_eps <= 1))
      throw config_error("norm_eps", "must be in (0, 1], got " + std::to_string(s.norm_eps));
    if (decays) {
      if (static_cast<int64_t>(decays->size()) != s.n_heads)
        throw config_error("decays", "needs one value per head (" + std::to_string(s.n_heads) + "), got " +
                                         std::to_string(decays->size()));
      for (double g : *decays)
        if (!(g > 0 && g <= 1)) throw config_error("decays", "each decay must be in (0, 1], got " + std::to_string(g));
      s.decays = *decays;
    } else {
      for (int64_t h = 0; h < s.n_heads; ++h) s.decays.push_back(default_decay(h));
    }
    s.value_dim = static_cast<int64_t>(value_dim);
    s.key_head_dim = s.d_model / s.n_heads;
    s.value_head_dim = s.value_dim / s.n_heads;
    return s;
  }
};

// ---------------------------------------------------------------- decay powers
// Every power is γ^e with e >= 0, computed as exp(e log γ): values stay in
// [0, 1] for any decay and length, so no ratio γ^n / γ^m can overflow.

// log γ_h as an (H) tensor in the compute dtype on `options`' device.
inline Tensor log_decays(const std::vector<double>& decays, const torch::TensorOptions& options) {
  std::vector<double> logs;
  for (double g : decays) logs.push_back(std::log(g));
  return torch::tensor(logs, torch::kFloat64).to(options.device(), options.dtype().toScalarType());
}

// γ^e for exponents e (L): (H, L, 1), to scale the rows of a (H, L, d) block.
inline Tensor decay_powers(const Tensor& log_decay, const Tensor& exponents) {
  return torch::exp(log_decay.unsqueeze(-1) * exponents).unsqueeze(-1);
}

// D[h, n, m] = γ_h^(n-m) for n >= m and exactly 0 above the diagonal: (H, L, L).
inline Tensor decay_mask(const Tensor& log_decay, int64_t len) {
  auto position = torch::arange(len, log_decay.options());
  auto distance = position.unsqueeze(1) - position.unsqueeze(0);
  auto exponent = log_decay.view({-1, 1, 1}) * distance;
  // exp(-inf) = 0: future entries are exact zeros, never exp of a large positive number.
  return torch::exp(exponent.masked_fill(distance < 0, -std::numeric_limits<double>::infinity()));
}

// ---------------------------------------------------------------- the layer around the core

// The retention inputs of one call, in the compute dtype: (B, H, T, d_k) and (B, H, T, d_v).
struct Heads {
  Tensor q, k, v;
};

class Layout {
 public:
  explicit Layout(const CreateArgs& args) : s_(Settings::parse(args)) {}

  const Settings& settings() const { return s_; }

  // nn.Linear weights (out, in), no biases; xavier-normal stds with torchscale's gains.
  std::vector<ParamSpec> params() const {
    int64_t d = s_.d_model, dv = s_.value_dim;
    auto xavier = [](double gain, int64_t fan_in, int64_t fan_out) {
      return gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
    };
    const double qkvg_gain = std::pow(2.0, -2.5);
    return {
        ParamSpec::normal("q_proj", {d, d}, "query projection (d_model, d_model)", xavier(qkvg_gain, d, d)),
        ParamSpec::normal("k_proj", {d, d}, "key projection (d_model, d_model)", xavier(qkvg_gain, d, d)),
        ParamSpec::normal("v_proj", {dv, d}, "value projection (value_dim, d_model)", xavier(qkvg_gain, d, dv)),
        ParamSpec::normal("g_proj", {dv, d}, "gate projection (value_dim, d_model)", xavier(qkvg_gain, d, dv)),
        ParamSpec::normal("out_proj", {d, dv}, "output projection (d_model, value_dim)", xavier(0.5, dv, d)),
    };
  }

  // Projections, split into heads, q and k rotated for positions offset.., k scaled by d_k^-1/2.
  Heads project(const Tensor& x, const Params& p, int64_t offset) const {
    auto dtype = compute_dtype(x.scalar_type());
    auto heads = [&](const Tensor& t, int64_t head_dim) {
      return t.view({x.size(0), x.size(1), s_.n_heads, head_dim}).transpose(1, 2).to(dtype);
    };
    auto q = heads(torch::linear(x, p["q_proj"]), s_.key_head_dim);
    auto k = heads(torch::linear(x, p["k_proj"]), s_.key_head_dim) * (1.0 / std::sqrt(double(s_.key_head_dim)));
    auto v = heads(torch::linear(x, p["v_proj"]), s_.value_head_dim);
    auto [cos, sin] = rotation(x.size(1), offset, q.options());
    return {rotate(q, cos, sin), rotate(k, cos, sin), v};
  }

  // y = out_proj(gate(g_proj x) * GroupNorm_h(o)) for the core output o (B, H, T, d_v).
  Tensor output(const Tensor& x, const Params& p, const Tensor& o) const {
    auto normed = o * torch::rsqrt(o.square().mean(-1, true) + s_.norm_eps);
    auto merged = normed.transpose(1, 2).reshape({x.size(0), x.size(1), s_.value_dim});
    auto g = torch::linear(x, p["g_proj"]).to(o.scalar_type());
    return torch::linear((gate(g) * merged).to(x.scalar_type()), p["out_proj"]);
  }

  Tensor log_decay(const torch::TensorOptions& options) const { return log_decays(s_.decays, options); }

 private:
  // torchscale RetNetRelPos: angle_i = 10000^-linspace(0, 1, d_k/2)_i, each repeated for an
  // interleaved pair; computed in float64 so large positions keep their phase.
  std::pair<Tensor, Tensor> rotation(int64_t len, int64_t offset, const torch::TensorOptions& options) const {
    auto f64 = options.dtype(torch::kFloat64);
    auto angle = torch::pow(10000.0, -torch::linspace(0.0, 1.0, s_.key_head_dim / 2, f64)).repeat_interleave(2);
    auto theta = torch::arange(offset, offset + len, f64).unsqueeze(1) * angle;
    return {theta.cos().to(options.dtype()), theta.sin().to(options.dtype())};
  }

  // x cos + rotate_every_two(x) sin, rotate_every_two(x)_(2i, 2i+1) = (-x_(2i+1), x_(2i)).
  static Tensor rotate(const Tensor& x, const Tensor& cos, const Tensor& sin) {
    using torch::indexing::Slice;
    auto even = x.index({"...", Slice(0, torch::indexing::None, 2)});
    auto odd = x.index({"...", Slice(1, torch::indexing::None, 2)});
    return x * cos + torch::stack({-odd, even}, -1).flatten(-2) * sin;
  }

  Tensor gate(const Tensor& g) const {
    if (s_.gate == "gelu") return torch::gelu(g);
    if (s_.gate == "sigmoid") return torch::sigmoid(g);
    return torch::silu(g);
  }

  Settings s_;
};

// What every core returns: the output (..., H, T, d_v) and the state after the last token.
struct CoreResult {
  Tensor o;
  Tensor state;
};

}  // namespace mixlab::retnet
