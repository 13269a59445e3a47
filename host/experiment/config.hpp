// The experiment: every setting of a run, one struct per TOML section. The
// defaults written here are the defaults (schema.cpp reads them back for the
// docs and for `host validate`); schema.cpp also holds the allowed values.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

// Where a value came from, for error messages ("file:line:col").
struct SourcePos {
  std::string file;
  int64_t line = 0;
  int64_t column = 0;
  std::string str() const;
};

// A mixer or FFN of a layer: which plugin, and its own config (as JSON).
struct PluginChoice {
  std::string plugin;
  std::optional<std::string> impl;
  std::optional<std::string> version;
  nlohmann::json config = nlohmann::json::object();
  bool none = false;                         // `ffn = "none"` / `mixer = "none"`: no such branch
  SourcePos pos;                             // the table
  std::map<std::string, SourcePos> key_pos;  // each config key
  std::string label() const;                 // "plugin[/impl][@version]"
};

// Mixture-of-depths (Raposo et al. 2024) on a layer: a router picks the tokens that
// pass through it; the rest ride the residual (host/model/depth_gating.hpp).
struct DepthGating {
  double capacity = 1.0;         // share of each sequence's tokens that pass in training, in (0, 1]
  std::string router = "linear";  // d_model -> 1 projection (with a bias)
  double aux_loss = 0.1;         // weight of the router's BCE against top-k membership (causal inference)
  SourcePos pos;
};

// Parallel streams (host/model/parallel_streams.hpp): mixers side by side on the layer's normed
// input, merged into the one branch that takes the mixer's place.
struct StreamSpec {
  PluginChoice mixer;
  int64_t width = 0;  // the mixer's width; 0: d_model (else an input projection d_model -> width)
  SourcePos pos;
  int64_t width_or(int64_t d_model) const { return width ? width : d_model; }
};
struct ParallelStreams {
  std::vector<StreamSpec> streams;  // two or more
  std::string merge;                // concat | add | gated | cross_attn
  int64_t merge_heads = 1;          // cross_attn: heads of the cross-attention
  SourcePos pos;
};

// A plugin's place in a layer: its slot, the parameter prefix below "layers.<i>." ("mixer",
// "streams.1.mixer", "ffn"), and for a parallel stream the stream's index.
template <class Plugin>
struct LayerSlot {
  std::string name;
  Plugin plugin;
  std::optional<size_t> stream;
};

// A layer: `norm -> mixer -> residual -> norm -> ffn -> residual`; a slot that is
// "none" has neither its norm nor its residual branch (at most one is "none").
struct LayerTemplate {
  PluginChoice mixer;  // "none" when the layer has streams
  PluginChoice ffn;
  std::optional<DepthGating> depth_gating;
  std::optional<ParallelStreams> streams;
  // The layer's plugin choices in parameter order, "none" left out.
  std::vector<LayerSlot<const PluginChoice*>> plugins() const;
};

struct ScheduleEntry {
  std::string template_name;
  int64_t repeat = 1;
  std::optional<DepthGating> depth_gating;  // replaces the template's for these layers
  SourcePos pos;
};

struct ExperimentConfig {
  struct Job {
    std::string name = "experiment";
    uint64_t seed = 0;
    std::string description;
    std::string output_dir;                // "": runs/<name>-<utc>-<id>
    std::vector<std::string> plugin_path;  // extra plugin folders
    int64_t target_params = 0;             // 0: none; explain reports the distance
    std::string level;                     // presets: beginner | intermediate | advanced | expert
    std::vector<std::string> references;   // papers the design comes from
  } job;
  struct Model {
    int64_t d_model = 0;  // required
    int64_t max_seq_len = 0;  // required
    std::string norm = "rmsnorm";
    std::string norm_position = "pre";
    double norm_eps = 1e-5;
    bool tie_embeddings = true;
    std::string positional = "none";
    std::string residual = "sequential";  // "parallel": h + mixer(norm(h)) + ffn(norm(h)) (GPT-J, PaLM)
    std::string readout = "lm";  // "autoencoder": the whole sequence decoded from the last token (model/readout.hpp)
    double dropout = 0.0;
    double init_std = 0.02;
    std::map<std::string, LayerTemplate> templates;
    std::vector<ScheduleEntry> schedule;
    std::map<int64_t, LayerTemplate> overrides;  // resolved per-layer replacements
    // Multi-token prediction (DeepSeek-V3, model/mtp_head.hpp): a training-only objective.
    struct Mtp {
      int64_t depth = 0;         // D extra tokens predicted; 0: none
      double loss_weight = 0.3;  // lambda: L = L_main + lambda / D * sum_k L_mtp_k
    } mtp;
  } model;
  struct Tokenizer {
    std::string kind = "byte";
    std::string model_type = "bpe";
    int64_t vocab_size = 0;
    std::string model_file;  // a SentencePiece model to use instead of training one (relative: to the experiment file)
  } tokenizer;
  struct Data {
    std::string source;  // required
    double val_fraction = 0.1;
    int64_t seq_len = 0;  // required
    std::map<std::string, double> options;
    std::string cache_dir;  // "": $MIXLAB_CACHE or ~/.cache/mixlab
  } data;
  struct Optimizer {
    double lr = 3e-3;
    std::vector<double> betas{0.9, 0.95};
    double eps = 1e-8;
    double weight_decay = 0.1;
  } optimizer;
  struct LrScheduler {
    std::string decay_type = "cosine";
    int64_t warmup_steps = 0;
    double min_lr_factor = 0.1;
  } lr_scheduler;
  struct Training {
    int64_t steps = 0;  // required
    int64_t batch_size = 8;
    int64_t grad_accum_steps = 1;
    double max_norm = 1.0;
    std::string dtype = "float32";
    std::string device = "cpu";
    int64_t threads = 0;  // 0: all cores
    double step_timeout_s = 0;  // 0: no limit (the host run supervisor enforces it)
    std::string dist_backend = "auto";  // data-parallel runs: gloo (CPU) | nccl (CUDA)
    double dist_timeout_s = 300;        // a silent rank fails the others after this long
    double bucket_mib = 25;             // gradient all-reduce bucket size
    bool fused = true;  // host fast paths (fused AdamW, chunked LM-head loss, fused add + norm); false: the references
  } training;
  struct Validation {
    int64_t every = 100;
    int64_t batches = 20;
  } validation;
  struct Checkpoint {
    int64_t every = 0;  // 0: only at the end
    int64_t keep_last = 2;
  } checkpoint;
  struct Metrics {
    int64_t log_every = 10;
  } metrics;
  // [execution_modes.<name>]: how `host generate --mode NAME` samples (model/generation.hpp).
  struct ExecutionMode {
    int64_t budget = 0;                 // most tokens generated in the mode; 0: generate --tokens
    std::optional<double> temperature;  // unset: generate --temperature
    std::optional<int64_t> top_k;       // unset: generate --top-k
    struct Transition {
      std::string to;              // the next mode; "": the mode is the last one
      std::string special_token;   // one vocabulary piece: sampling it switches to `to`
      bool budget_exhausted = false;  // a spent budget switches too, inserting special_token
      SourcePos token_pos;
    } transition;
    SourcePos pos;
  };
  std::map<std::string, ExecutionMode> execution_modes;

  // The layers in order, with overrides applied.
  std::vector<LayerTemplate> layers() const;
  // Every setting as JSON (the resolved config in manifests and run folders).
  nlohmann::json to_json() const;
};

}  // namespace mixlab
