// Titans' neural long-term memory (Behrouz, Zhong & Mirrokni 2024, "Titans:
// Learning to Memorize at Test Time", arXiv 2501.00663, §3): the config, the ONE
// parameter layout both implementations share (so they A/B on the same
// weights), the projections every form starts from, the memory MLP and its
// closed-form inner gradient, and the output path.
//
// For x (B, T, d_model), H heads of d_h = d_model / H channels, per head:
//
//   x~    = [p_1 .. p_Np ; x]                 persistent tokens prepended (§3.3); their outputs are dropped
//   k_t   = l2norm(x~_t W_K),  q_t = l2norm(x~_t W_Q),  v_t = l2norm(x~_t W_V)  (d_h each, §4.4)
//   l2norm(z) = z / sqrt(||z||² + 1e-6)
//   α_t   = σ(x~_t w_α + b_α)   forgetting gate      η_t = σ(x~_t w_η + b_η)   momentum decay
//   θ_t   = inner_lr σ(x~_t w_θ + b_θ)                inner learning rate
//   M(z)  = W z                          (memory_depth 1)
//   M(z)  = W_2 silu(W_1 z)              (memory_depth 2, W_1: (d_hid, d_h), W_2: (d_h, d_hid))
//   l(M; x_t) = ||M(k_t) - v_t||²        the associative loss (eq. 12)
//
// Chunked online learning (§3.2): the sequence x~ is cut into chunks of C =
// chunk_size tokens at absolute positions 0, C, 2C, ...; inside a chunk every
// gradient is taken at the chunk-start weights M_{c}:
//
//   u_t = ∇_M l(M_{c}; x_t)                              c = the start of t's chunk
//   θ'_t = θ_t min(1, ρ / ||u_t||)                       the surprise clamp (ours, below)
//   S_t = η_t S_{t-1} - θ'_t u_t                         surprise with momentum (eq. 10)
//   M_t = (1 - α_t) M_{t-1} + S_t                        forgetting gate (eq. 13)
//   o_t = M_t(q_t)                                       retrieval, no update (eq. 15)
//   y_t = W_O ((RMSNorm_head(o_t) ⊙ g) ⊙ σ(x~_t W_G))    per-head norm and output gate (§4.4)
//
// with M_0 the learned initial memory (parameters) and S_0 = 0. C = 1 is plain
// online gradient descent with momentum and weight decay. The clamp bounds each
// token's step to θ_t ρ (ρ = inner_max_grad_norm, ||·|| the Frobenius norm over
// all memory layers): unclamped, a trained two-layer memory whose keys share a
// direction overshoots a chunk's summed step and grows doubly exponentially
// (0.4 -> 1.2 -> 3.7 -> 1.5e4 -> 6e13 -> inf over five chunks of 16 tokens, seen
// in MQAR at T 128); clamped, it grows at most linearly in T. u_t is written out
// analytically (rank one per layer, below), so the outer training
// differentiates through ordinary tensor ops.
//
// Tensor convention inside the plugin: per-token vectors are (B, H, n, dim),
// per-token scalars (B, H, n), memory weights (B, H, out, in) (torch.nn.Linear's
// (out, in) per head).
#pragma once

#include <mixlab/plugin.hpp>

#include <cmath>

namespace mixlab::titans {

using torch::Tensor;

// The memory runs in float64 for float64 inputs and in float32 otherwise: an
// inner gradient descent in bfloat16 drifts.
inline torch::ScalarType compute_dtype(torch::ScalarType input) {
  return input == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

struct TitansConfig {
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t head_dim = 0;           // d_h
  int64_t memory_depth = 2;       // L_M
  int64_t memory_hidden = 0;      // d_hid = memory_expansion * d_h (depth 2)
  int64_t chunk_size = 16;        // C
  double inner_lr = 0.1;          // the largest θ
  int64_t persistent_tokens = 0;  // N_p
  double inner_max_grad_norm = 4.0;  // ρ: a token's surprise ||u_t|| above ρ is scaled down to ρ (0: off)
  bool update_at_inference = true;
  double norm_eps = 1e-6;

  static TitansConfig parse(const CreateArgs& args) {
    const Config& c = args.config;
    TitansConfig cfg;
    cfg.d_model = args.d_model;
    // The walkthrough's memory block names three kinds; this plugin is the first.
    const std::string type = c.get<std::string>("memory_type", "neural_memory");
    if (type == "associative" || type == "retrieval")
      throw config_error("memory_type", "\"" + type +
                                            "\" is named by the architecture walkthrough but not implemented; the titans "
                                            "plugin implements \"neural_memory\" (Titans' neural long-term memory) only");
    c.get_choice("memory_type", "neural_memory", {"neural_memory"});
    cfg.n_heads = c.get_int("n_heads", std::max<int64_t>(1, args.d_model / 64));
    if (args.d_model % cfg.n_heads != 0)
      throw config_error("n_heads", "must divide d_model = " + std::to_string(args.d_model) + ", got " +
                                        std::to_string(cfg.n_heads));
    cfg.head_dim = args.d_model / cfg.n_heads;
    cfg.memory_depth = c.get_int("memory_depth", 2);
    if (cfg.memory_depth > 2)
      throw config_error("memory_depth", "must be 1 (a linear memory) or 2 (a two-layer MLP), got " +
                                             std::to_string(cfg.memory_depth));
    const int64_t expansion = c.get_int("memory_expansion", 2);
    if (expansion > 64) throw config_error("memory_expansion", "must be in [1, 64], got " + std::to_string(expansion));
    cfg.memory_hidden = expansion * cfg.head_dim;
    cfg.chunk_size = c.get_int("chunk_size", 16);
    cfg.inner_lr = c.get<double>("inner_lr", 0.1);
    if (!(cfg.inner_lr > 0.0 && cfg.inner_lr <= 1.0))
      throw config_error("inner_lr", "must be in (0, 1] (the largest inner step θ), got " + std::to_string(cfg.inner_lr));
    // 4 = twice the surprise of a memory that knows nothing (||2 e ⊗ k|| = 2 with
    // ||v|| = ||k|| = 1): the clamp cuts outliers, not the typical token.
    cfg.inner_max_grad_norm = c.get<double>("inner_max_grad_norm", 4.0);
    if (!(cfg.inner_max_grad_norm >= 0.0 && std::isfinite(cfg.inner_max_grad_norm)))
      throw config_error("inner_max_grad_norm", "must be a finite number >= 0 (0: no clamp), got " +
                                                    std::to_string(cfg.inner_max_grad_norm));
    cfg.persistent_tokens = c.get_int("persistent_tokens", 0, 0);
    if (cfg.persistent_tokens > 4096)
      throw config_error("persistent_tokens", "must be in [0, 4096], got " + std::to_string(cfg.persistent_tokens));
    cfg.update_at_inference = c.get<bool>("update_at_inference", true);
    cfg.norm_eps = c.get<double>("norm_eps", 1e-6);
    if (!(cfg.norm_eps > 0.0 && cfg.norm_eps < 1.0))
      throw config_error("norm_eps", "must be in (0, 1), got " + std::to_string(cfg.norm_eps));
    return cfg;
  }

  // (out, in) of each memory layer, first layer first.
  std::vector<std::pair<int64_t, int64_t>> memory_shapes() const {
    if (memory_depth == 1) return {{head_dim, head_dim}};
    return {{memory_hidden, head_dim}, {head_dim, memory_hidden}};
  }

  // Values in one head's memory weights (|M|).
  int64_t memory_size() const {
    int64_t n = 0;
    for (auto [out, in] : memory_shapes()) n += out * in;
    return n;
  }

  // The parameter layout: torch.nn.Linear weights (out, in); head h owns rows
  // [h d_h, (h + 1) d_h) of wq, wk, wv, w_gate and those columns of wo; rows
  // [0, H), [H, 2H), [2H, 3H) of w_gates / b_gates are α, η, θ per head.
  std::vector<ParamSpec> params() const {
    std::vector<ParamSpec> p;
    if (persistent_tokens > 0)
      p.push_back(ParamSpec::normal("persistent", {persistent_tokens, d_model},
                                    "persistent memory tokens prepended to the layer input (persistent_tokens, d_model)"));
    p.push_back(ParamSpec::normal("wq", {d_model, d_model}, "query projection W_Q (d_model, d_model)"));
    p.push_back(ParamSpec::normal("wk", {d_model, d_model}, "key projection W_K (d_model, d_model)"));
    p.push_back(ParamSpec::normal("wv", {d_model, d_model}, "value projection W_V (d_model, d_model)"));
    p.push_back(ParamSpec::normal("w_gates", {3 * n_heads, d_model}, "α, η, θ projections per head (3 n_heads, d_model)"));
    p.push_back(ParamSpec::custom("b_gates", {3 * n_heads}, "α, η, θ biases per head: -4, 0, 0 (3 n_heads)",
                                  MIXLAB_PARAM_NO_WEIGHT_DECAY));
    // The initial memory M_0 per head, at 1/sqrt(fan_in) like torch.nn.Linear's scale.
    const auto shapes = memory_shapes();
    for (size_t l = 0; l < shapes.size(); ++l) {
      auto [out, in] = shapes[l];
      const std::string name = memory_depth == 1 ? "memory_w" : "memory_w" + std::to_string(l + 1);
      p.push_back(ParamSpec::normal(name, {n_heads, out, in},
                                    "initial memory layer " + std::to_string(l + 1) + " per head (n_heads, " +
                                        std::to_string(out) + ", " + std::to_string(in) + ")",
                                    1.0 / std::sqrt(static_cast<double>(in))));
    }
    p.push_back(ParamSpec::ones("out_norm", {d_model}, "per-channel weight of the per-head RMSNorm of M_t(q_t)"));
    p.push_back(ParamSpec::normal("w_gate", {d_model, d_model}, "output gate projection W_G (d_model, d_model)"));
    p.push_back(ParamSpec::normal("wo", {d_model, d_model}, "output projection W_O (d_model, d_model)"));
    return p;
  }

  std::vector<std::string> memory_names() const {
    if (memory_depth == 1) return {"memory_w"};
    return {"memory_w1", "memory_w2"};
  }
};

// What the memory reads per token of a piece: (B, H, n, d_h) vectors and
// (B, H, n) scalars, in the compute dtype.
struct Tokens {
  Tensor q, k, v;
  Tensor log_keep;  // log(1 - α_t)
  Tensor log_eta;   // log η_t
  Tensor theta;     // θ_t

  int64_t size() const { return q.size(2); }
  Tokens slice(int64_t start, int64_t n) const {
    return {q.narrow(2, start, n), k.narrow(2, start, n), v.narrow(2, start, n), log_keep.narrow(2, start, n),
            log_eta.narrow(2, start, n), theta.narrow(2, start, n)};
  }
};

// z / sqrt(||z||² + 1e-6) over the last dim: unit length, smooth at 0. The
// paper normalises q and k; v too here, so the inner descent does not depend on
// the input's scale (with raw values a x100 input drives a two-layer memory to NaN).
inline Tensor l2norm(const Tensor& z) { return z * torch::rsqrt(z.pow(2).sum(-1, true) + 1e-6); }

// x~ (B, n, d_model) into the memory's inputs.
inline Tokens project(const TitansConfig& cfg, const Tensor& x, const Params& p) {
  const int64_t B = x.size(0), n = x.size(1), H = cfg.n_heads;
  auto dtype = compute_dtype(x.scalar_type());
  auto heads = [&](const char* w) {
    return torch::linear(x, p[w]).view({B, n, H, cfg.head_dim}).transpose(1, 2).to(dtype);
  };
  auto gates = torch::linear(x, p["w_gates"], p["b_gates"]).to(dtype).transpose(1, 2);  // (B, 3H, n)
  auto z = gates.split(H, 1);
  return {l2norm(heads("wq")), l2norm(heads("wk")), l2norm(heads("wv")),
          torch::log_sigmoid(-z[0]), torch::log_sigmoid(z[1]), cfg.inner_lr * torch::sigmoid(z[2])};
}

// o (B, H, n, d_h) and x~ (B, n, d_model) into y (B, n, d_model) in x's dtype.
inline Tensor output(const TitansConfig& cfg, const Tensor& o, const Tensor& x, const Params& p) {
  const int64_t B = o.size(0), n = o.size(2);
  auto normed = o * torch::rsqrt(o.pow(2).mean(-1, true) + cfg.norm_eps);
  auto flat = normed.transpose(1, 2).reshape({B, n, cfg.d_model}).to(x.scalar_type()) * p["out_norm"];
  return torch::linear(flat * torch::sigmoid(torch::linear(x, p["w_gate"])), p["wo"]);
}

// ---- The memory MLP. Weights are one (B, H, out, in) tensor per layer.

using Weights = std::vector<Tensor>;

inline Tensor silu_grad(const Tensor& h) {
  auto s = torch::sigmoid(h);
  return s * (1 + h * (1 - s));
}

// M(z) for z (B, H, n, d_h).
inline Tensor retrieve(const Weights& w, const Tensor& z) {
  auto out = torch::matmul(z, w[0].transpose(-2, -1));
  if (w.size() == 2) out = torch::matmul(torch::silu(out), w[1].transpose(-2, -1));
  return out;
}

// ∇_M ||M(k) - v||² at weights w for every token of a piece, in closed form.
// Per layer the gradient of one token is rank one, out_i ⊗ in_i; returns the
// factors (B, H, n, out) and (B, H, n, in) per layer:
//   depth 1:  e = W k - v;                         ∇W = (2e) ⊗ k
//   depth 2:  h = W_1 k, a = silu(h), e = W_2 a - v; ∇W_2 = (2e) ⊗ a,
//             ∇W_1 = ((W_2ᵀ 2e) ⊙ silu'(h)) ⊗ k
struct RankOne {
  Tensor out, in;
};
inline std::vector<RankOne> inner_gradient(const Weights& w, const Tensor& k, const Tensor& v) {
  if (w.size() == 1) return {{2 * (torch::matmul(k, w[0].transpose(-2, -1)) - v), k}};
  auto h = torch::matmul(k, w[0].transpose(-2, -1));
  auto a = torch::silu(h);
  auto de = 2 * (torch::matmul(a, w[1].transpose(-2, -1)) - v);
  return {{torch::matmul(de, w[1]) * silu_grad(h), k}, {de, a}};
}

// θ'_t = θ_t min(1, ρ / ||u_t||) (B, H, n) for a piece's gradients: the step
// θ'_t u_t is never longer than θ_t ρ. Rank one per layer, ||o ⊗ z|| = ||o|| ||z||,
// so ||u_t||² is a sum over layers of products of squared norms.
inline Tensor clamped_theta(const TitansConfig& cfg, const std::vector<RankOne>& grads, const Tensor& theta) {
  if (cfg.inner_max_grad_norm == 0.0) return theta;
  auto squared = torch::zeros_like(theta);
  for (const auto& r : grads) squared = squared + r.out.pow(2).sum(-1) * r.in.pow(2).sum(-1);
  // ρ / max(||u||, ρ), with ||u||² floored at ρ² rather than near 0: rsqrt's
  // derivative there stays finite, so an unclamped token's zero gradient through
  // the floor never meets an infinite one (0 · inf = NaN in the backward pass).
  const double rho = cfg.inner_max_grad_norm;
  return theta * (rho * torch::rsqrt(squared.clamp_min(rho * rho))).clamp_max(1.0);
}

}  // namespace mixlab::titans
