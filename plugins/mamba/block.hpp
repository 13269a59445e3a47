// The Mamba-2 block around an SSD core: in_proj -> [z, xBC, dt] -> causal
// depthwise conv + SiLU over xBC -> SSD scan (+ D skip) -> gated RMSNorm with z
// -> out_proj. Everything but the scan is shared; an implementation chooses the
// scan (recurrent.hpp, chunked.hpp). Decode keeps the conv history and the SSM
// state, both constant in size, and runs the same code path as forward.
#pragma once

#include "common.hpp"

namespace mixlab::mamba {

// mamba_ssm's RMSNormGated eps.
inline constexpr double kNormEps = 1e-5;

// Depthwise convolution over time as d_conv shifted multiply-adds, so that output t
// reads inputs t-d_conv+1 .. t only (exact causality). `padded` is (b, d_conv-1+T, c):
// the d_conv-1 inputs before this call, then the T new ones; weight is (c, 1, d_conv).
inline torch::Tensor causal_depthwise_conv(const torch::Tensor& padded, const torch::Tensor& weight,
                                           const torch::Tensor& bias) {
  const int64_t taps = weight.size(2), T = padded.size(1) - (taps - 1);
  auto w = weight.squeeze(1).t();  // (d_conv, c)
  auto out = padded.narrow(1, 0, T) * w[0] + bias;
  for (int64_t k = 1; k < taps; ++k) out = out + padded.narrow(1, k, T) * w[k];
  return out;
}

// RMSNorm(y * silu(z)) * weight (norm_before_gate=False), normalised over groups of
// d_inner / ngroups channels as mamba_ssm's RMSNormGated(group_size=d_inner/ngroups).
inline torch::Tensor gated_rms_norm(const torch::Tensor& y, const torch::Tensor& z, const torch::Tensor& weight,
                                    int64_t ngroups) {
  auto gated = (y * torch::silu(z)).unflatten(-1, {ngroups, y.size(-1) / ngroups});
  auto normed = gated * torch::rsqrt(gated.square().mean(-1, /*keepdim=*/true) + kNormEps);
  return normed.flatten(-2) * weight;
}

struct MambaState : State {
  torch::Tensor conv_history;  // (b, d_conv-1, conv_dim): the last inputs of the conv
  torch::Tensor ssm;           // (b, n_heads, headdim, d_state)
};

class Mamba2Block : public Module {
 public:
  // What every implementation declares: the default caps plus decode; forward is const and stateless.
  static ImplInfo impl_info(const char* impl, const char* description) {
    ImplInfo info{MIXLAB_FAMILY_MIXER, "mamba", impl, "1.0.0", description};
    info.caps |= MIXLAB_CAP_DECODE | MIXLAB_CAP_REENTRANT;
    return info;
  }

  explicit Mamba2Block(const CreateArgs& args) : cfg_(MambaConfig::parse(args)) {}

  const MambaConfig& config() const { return cfg_; }

  // The core scan (see SsdResult in common.hpp) and its FLOPs per token.
  virtual SsdResult ssd(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& A,
                        const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& initial_state) const = 0;
  virtual double ssd_flops_per_token(int64_t seq_len) const = 0;

  std::vector<ParamSpec> params() const override { return param_specs(cfg_); }

  void init_param(const std::string& name, torch::Tensor& param, at::Generator& gen) const override {
    mamba::init_param(cfg_, name, param, gen);
  }

  Output forward(const torch::Tensor& x, const Params& p, const Call&) const override {
    auto history = torch::zeros({x.size(0), cfg_.d_conv - 1, cfg_.conv_dim()},
                                x.options().dtype(compute_dtype(x.scalar_type())));
    return {mix(x, p, history, torch::Tensor()).y};
  }

  std::unique_ptr<State> new_state(int64_t batch, const torch::TensorOptions& options) const override {
    auto opts = options.dtype(compute_dtype(c10::typeMetaToScalarType(options.dtype())));
    auto s = std::make_unique<MambaState>();
    s->conv_history = torch::zeros({batch, cfg_.d_conv - 1, cfg_.conv_dim()}, opts);
    s->ssm = torch::zeros({batch, cfg_.n_heads(), cfg_.headdim, cfg_.d_state}, opts);
    return s;
  }

  torch::Tensor step(State& state, const torch::Tensor& x, const Params& p) const override {
    auto& s = dynamic_cast<MambaState&>(state);
    auto out = mix(x, p, s.conv_history, s.ssm);
    s.conv_history = out.conv_history;
    s.ssm = out.ssm;
    return out.y;
  }

  Cost cost(int64_t seq_len, int32_t dtype_bytes) const override {
    const auto& m = cfg_;
    double projections = 2.0 * m.d_model * m.d_in_proj() + 2.0 * m.d_inner() * m.d_model;
    double conv = 2.0 * m.d_conv * m.conv_dim();
    double gate_norm = 6.0 * m.d_inner();  // D skip, silu gate, RMSNorm
    Cost c;
    c.forward_flops = projections + conv + gate_norm + ssd_flops_per_token(seq_len);
    // Both caches live in the compute dtype (float32 at least).
    double state_elems = static_cast<double>(m.d_conv - 1) * m.conv_dim() +
                         static_cast<double>(m.n_heads()) * m.headdim * m.d_state;
    c.state_bytes = state_elems * std::max<int32_t>(dtype_bytes, 4);
    c.state_grows = false;
    return c;
  }

 private:
  struct Mixed {
    torch::Tensor y, conv_history, ssm;
  };

  // The block on x (b, T, d_model), continuing from a conv history and an SSM state
  // (undefined: zeros). Forward and decode both run this.
  Mixed mix(const torch::Tensor& x, const Params& p, const torch::Tensor& conv_history,
            const torch::Tensor& ssm_state) const {
    const auto& m = cfg_;
    const int64_t T = x.size(1), heads = m.n_heads(), bc = m.ngroups * m.d_state;
    const auto ct = compute_dtype(x.scalar_type());
    auto zxbcdt = torch::linear(x, p["in_proj.weight"]).to(ct);
    auto parts = zxbcdt.split_with_sizes({m.d_inner(), m.conv_dim(), heads}, -1);
    const auto &z = parts[0], &dt_raw = parts[2];

    auto padded = torch::cat({conv_history, parts[1]}, 1);
    auto xBC = torch::silu(causal_depthwise_conv(padded, p["conv1d.weight"].to(ct), p["conv1d.bias"].to(ct)));
    auto xbc = xBC.split_with_sizes({m.d_inner(), bc, bc}, -1);
    auto xs = xbc[0].unflatten(-1, {heads, m.headdim});
    auto B = xbc[1].unflatten(-1, {m.ngroups, m.d_state});
    auto C = xbc[2].unflatten(-1, {m.ngroups, m.d_state});

    auto dt = torch::softplus(dt_raw + p["dt_bias"].to(ct));
    auto A = -torch::exp(p["A_log"].to(ct));
    auto scan = ssd(xs, dt, A, B, C, ssm_state);
    auto y = scan.y + xs * p["D"].to(ct).unsqueeze(-1);
    y = gated_rms_norm(y.flatten(-2), z, p["norm.weight"].to(ct), m.ngroups);
    return {torch::linear(y.to(x.scalar_type()), p["out_proj.weight"]), padded.narrow(1, T, m.d_conv - 1),
            scan.final_state};
  }

  MambaConfig cfg_;
};

}  // namespace mixlab::mamba
