// The Mamba-2 config and the ONE parameter layout that every implementation
// (`recurrent`, `chunked`) shares, so they can be swapped on the same weights.
// Names and shapes follow mamba_ssm's `Mamba2` state_dict (see README.md).
#pragma once

#include <mixlab/plugin.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace mixlab::mamba {

struct MambaConfig {
  int64_t d_model = 0;
  int64_t d_state = 16;    // n: state size per head (mamba_ssm: 128)
  int64_t headdim = 16;    // p: channels per head (mamba_ssm: 64)
  int64_t expand = 2;      // d_inner = expand * d_model
  int64_t ngroups = 1;     // g: B/C groups, shared by n_heads / ngroups heads each
  int64_t d_conv = 4;      // width of the causal depthwise convolution
  int64_t chunk_size = 64; // Q of the chunked algorithm (mamba_ssm: 256)
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  bool fused_kernels = true;  // chunked's segment sum by segsum_kernel.hpp; false: the composed reference (A/B)

  int64_t d_inner() const { return expand * d_model; }
  int64_t n_heads() const { return d_inner() / headdim; }
  int64_t conv_dim() const { return d_inner() + 2 * ngroups * d_state; }  // x, B, C go through the conv
  int64_t d_in_proj() const { return 2 * d_inner() + 2 * ngroups * d_state + n_heads(); }  // z, xBC, dt

  static MambaConfig parse(const CreateArgs& args) {
    const Config& c = args.config;
    MambaConfig m;
    m.d_model = args.d_model;
    m.d_state = c.get_int("d_state", m.d_state);
    m.headdim = c.get_int("headdim", m.headdim);
    m.expand = c.get_int("expand", m.expand);
    m.ngroups = c.get_int("ngroups", m.ngroups);
    m.d_conv = c.get_int("d_conv", m.d_conv);
    m.chunk_size = c.get_int("chunk_size", m.chunk_size);
    m.dt_min = c.get<double>("dt_min", m.dt_min);
    m.dt_max = c.get<double>("dt_max", m.dt_max);
    m.dt_init_floor = c.get<double>("dt_init_floor", m.dt_init_floor);
    m.fused_kernels = c.get_choice("kernels", "fused", {"fused", "reference"}) == "fused";
    if (m.d_inner() % m.headdim != 0)
      throw config_error("headdim", "must divide d_inner = expand * d_model = " + std::to_string(m.d_inner()) +
                                        ", got " + std::to_string(m.headdim));
    if (m.n_heads() % m.ngroups != 0)
      throw config_error("ngroups", "must divide n_heads = " + std::to_string(m.n_heads()) + ", got " +
                                        std::to_string(m.ngroups));
    // dt is a step size: positive; at dt = 100 every head already forgets its state at once.
    auto positive = [](const std::string& key, double v, double hi) {
      if (!(v > 0.0 && v <= hi))
        throw config_error(key, "must be in (0, " + c10::str(hi) + "], got " + c10::str(v));
    };
    positive("dt_max", m.dt_max, 100.0);
    positive("dt_min", m.dt_min, m.dt_max);
    positive("dt_init_floor", m.dt_init_floor, 100.0);
    return m;
  }
};

// ---------------------------------------------------------------- parameters

inline std::vector<ParamSpec> param_specs(const MambaConfig& m) {
  const double conv_bound = 1.0 / std::sqrt(static_cast<double>(m.d_conv));  // nn.Conv1d's default (fan_in = d_conv)
  return {
      ParamSpec::normal("in_proj.weight", {m.d_in_proj(), m.d_model},
                        "input projection (d_in_proj, d_model); rows are [z (d_inner), x (d_inner), "
                        "B (ngroups*d_state), C (ngroups*d_state), dt (n_heads)]"),
      ParamSpec::uniform("conv1d.weight", {m.conv_dim(), 1, m.d_conv},
                         "causal depthwise conv over xBC (conv_dim, 1, d_conv); tap d_conv-1 is the current token",
                         -conv_bound, conv_bound),
      ParamSpec::uniform("conv1d.bias", {m.conv_dim()}, "bias of the conv (conv_dim)", -conv_bound, conv_bound)
          .no_weight_decay(),
      ParamSpec::custom("dt_bias", {m.n_heads()},
                        "added to dt before softplus (n_heads); init inverse softplus of logU(dt_min, dt_max) "
                        "floored at dt_init_floor",
                        MIXLAB_PARAM_NO_WEIGHT_DECAY),
      ParamSpec::custom("A_log", {m.n_heads()}, "A = -exp(A_log) (n_heads); init log U(1, 16)",
                        MIXLAB_PARAM_NO_WEIGHT_DECAY),
      ParamSpec::ones("D", {m.n_heads()}, "skip connection y += D x, per head (n_heads)"),
      ParamSpec::ones("norm.weight", {m.d_inner()}, "weight of the gated RMSNorm (d_inner)"),
      ParamSpec::normal("out_proj.weight", {m.d_model, m.d_inner()}, "output projection (d_model, d_inner)"),
  };
}

// mamba_ssm's Mamba2.__init__ initialisation of the two custom parameters.
inline void init_param(const MambaConfig& m, const std::string& name, torch::Tensor& param, at::Generator& gen) {
  if (name == "A_log") {
    param.uniform_(1.0, 16.0, gen).log_();
  } else if (name == "dt_bias") {
    auto dt = (param.uniform_(0.0, 1.0, gen) * (std::log(m.dt_max) - std::log(m.dt_min)) + std::log(m.dt_min))
                  .exp()
                  .clamp_min(m.dt_init_floor);
    param.copy_(dt + torch::log(-torch::expm1(-dt)));  // inverse of softplus
  } else {
    throw Error(MIXLAB_INTERNAL, "no custom init for " + name);
  }
}

// ---------------------------------------------------------------- the SSD core's interface

// The selective state-space recurrence every core implements (no D skip):
//   S_t = exp(dt_t A_h) S_{t-1} + dt_t x_t ⊗ B_t,   y_t = S_t C_t
// x (b, T, h, p); dt (b, T, h) > 0; A (h) < 0; B, C (b, T, g, n), head i uses group i / (h/g);
// initial_state (b, h, p, n) or undefined for zeros. Returns y (b, T, h, p) and S_T.
struct SsdResult {
  torch::Tensor y;
  torch::Tensor final_state;
};

// Scans run in float32 at least: reduced-precision inputs are upcast (as mamba_ssm does).
inline torch::ScalarType compute_dtype(torch::ScalarType t) {
  return t == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// The initial state, zeros when undefined: (b, h, p, n) for x (b, T, h, p) and B (b, T, g, n).
inline torch::Tensor initial_or_zeros(const torch::Tensor& initial_state, const torch::Tensor& x, const torch::Tensor& B) {
  if (initial_state.defined()) return initial_state;
  return torch::zeros({x.size(0), x.size(2), x.size(3), B.size(3)}, x.options());
}

}  // namespace mixlab::mamba
