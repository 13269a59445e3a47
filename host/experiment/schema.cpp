#include "experiment/schema.hpp"

#include <cmath>
#include <sstream>

namespace mixlab {
namespace {

template <class T>
using Ref = std::function<T&(ExperimentConfig&)>;

// An integer in [min, max]: every size has an upper bound, so that no product of
// sizes overflows and an absurd value is refused here rather than by the allocator.
Field int_field(std::string key, Ref<int64_t> ref, int64_t min, int64_t max, std::string help, bool required = false) {
  const std::string allowed = std::to_string(min) + " .. " + std::to_string(max);
  Field f{key, "integer", allowed, std::move(help), required, nullptr, nullptr};
  f.read = [ref, min, max, allowed](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    auto v = n.value<int64_t>();
    if (!n.is_integer() || !v) return "expected an integer in " + allowed + ", got " + describe_value(n);
    if (*v < min || *v > max) return "expected an integer in " + allowed + ", got " + std::to_string(*v);
    ref(c) = *v;
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

Field seed_field(std::string key, Ref<uint64_t> ref, std::string help) {
  Field f{key, "integer", ">= 0", std::move(help), false, nullptr, nullptr};
  f.read = [ref](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    auto v = n.value<int64_t>();
    if (!n.is_integer() || !v || *v < 0) return "expected an integer >= 0, got " + describe_value(n);
    ref(c) = static_cast<uint64_t>(*v);
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

// A float in [lo, hi] (open at lo when lo_open).
Field float_field(std::string key, Ref<double> ref, double lo, double hi, bool lo_open, std::string help) {
  std::ostringstream range;
  range << (lo_open ? "> " : ">= ") << lo;
  if (hi < 1e300) range << " and <= " << hi;
  Field f{key, "float", range.str(), std::move(help), false, nullptr, nullptr};
  std::string allowed = f.allowed;
  f.read = [ref, lo, hi, lo_open, allowed](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    auto v = n.value<double>();
    if (!(n.is_floating_point() || n.is_integer()) || !v) return "expected a number " + allowed + ", got " + describe_value(n);
    if (!std::isfinite(*v) || (lo_open ? *v <= lo : *v < lo) || *v > hi) {
      std::ostringstream s;
      s << "expected a number " << allowed << ", got " << *v;
      return s.str();
    }
    ref(c) = *v;
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

// Checks a string's value beyond its choices; returns the problem or nothing.
using StringCheck = std::function<std::optional<std::string>(const std::string&)>;

Field string_field(std::string key, Ref<std::string> ref, std::vector<std::string> choices, std::string help,
                   bool required = false, StringCheck check = nullptr, std::string check_text = "") {
  std::string allowed = check_text;
  for (const auto& ch : choices) allowed += (allowed.empty() ? "" : " | ") + ch;
  Field f{key, "string", allowed, std::move(help), required, nullptr, nullptr};
  f.read = [ref, choices, allowed, required, check](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    if (!n.is_string()) return "expected a string" + (allowed.empty() ? "" : " (" + allowed + ")") + ", got " + describe_value(n);
    std::string v = n.as_string()->get();
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end())
      return "expected one of " + allowed + ", got \"" + v + "\"";
    if (required && v.empty()) return "must not be empty";
    if (check)
      if (auto problem = check(v)) return *problem;
    ref(c) = v;
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

Field bool_field(std::string key, Ref<bool> ref, std::string help) {
  Field f{key, "boolean", "true | false", std::move(help), false, nullptr, nullptr};
  f.read = [ref](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    if (!n.is_boolean()) return "expected true or false, got " + describe_value(n);
    ref(c) = n.as_boolean()->get();
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

Field strings_field(std::string key, Ref<std::vector<std::string>> ref, std::string help) {
  Field f{key, "list of strings", "", std::move(help), false, nullptr, nullptr};
  f.read = [ref](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    if (!n.is_array()) return "expected a list of strings, got " + describe_value(n);
    std::vector<std::string> out;
    for (const auto& item : *n.as_array()) {
      if (!item.is_string()) return "expected a list of strings, got an element " + describe_value(item);
      out.push_back(item.as_string()->get());
    }
    ref(c) = out;
    return std::nullopt;
  };
  f.write = [ref](const ExperimentConfig& c) { return nlohmann::json(ref(const_cast<ExperimentConfig&>(c))); };
  return f;
}

Field betas_field() {
  Field f{"optimizer.betas", "list of floats", "two numbers in [0, 1)", "AdamW beta1, beta2", false, nullptr, nullptr};
  f.read = [](const toml::node& n, ExperimentConfig& c) -> std::optional<std::string> {
    const auto* a = n.as_array();
    if (!a || a->size() != 2) return "expected two numbers [beta1, beta2], got " + describe_value(n);
    std::vector<double> out;
    for (const auto& item : *a) {
      auto v = item.value<double>();
      if (!v || !(*v >= 0 && *v < 1)) return "expected numbers in [0, 1), got " + describe_value(item);
      out.push_back(*v);
    }
    c.optimizer.betas = out;
    return std::nullopt;
  };
  f.write = [](const ExperimentConfig& c) { return nlohmann::json(c.optimizer.betas); };
  return f;
}

// job.name becomes a folder name under runs/: it must not leave runs/ nor hide.
std::optional<std::string> run_name_problem(const std::string& name) {
  if (name.empty()) return "must not be empty (it names the run folder)";
  if (name.size() > limits::kNameLength)
    return "is " + std::to_string(name.size()) + " bytes long; at most " + std::to_string(limits::kNameLength);
  if (name.front() == '.') return "must not start with '.' (it names a folder under runs/)";
  if (name.find("..") != std::string::npos) return "must not contain \"..\"";
  for (char ch : name) {
    if (ch == '/' || ch == '\\') return "must not contain '/' or '\\' (it names one folder under runs/)";
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return "must not contain NUL or other control characters";
  }
  return std::nullopt;
}

#define MIXLAB_REF(type, member) Ref<type>([](ExperimentConfig& c) -> type& { return c.member; })

std::vector<Field> make_fields() {
  const double inf = 1e308;
  return {
      string_field("job.name", MIXLAB_REF(std::string, job.name), {}, "run name; the run folder is runs/<name>-<utc>-<id>",
                   false, run_name_problem, "one folder name: no / \\ .. or control characters, no leading ., at most 128 bytes"),
      seed_field("job.seed", Ref<uint64_t>([](ExperimentConfig& c) -> uint64_t& { return c.job.seed; }),
                 "seed of initialisation, data order, dropout and sampling"),
      string_field("job.description", MIXLAB_REF(std::string, job.description), {}, "free text, copied to the manifest"),
      string_field("job.output_dir", MIXLAB_REF(std::string, job.output_dir), {},
                   "run folder; empty: runs/<name>-<utc time>-<short id>"),
      strings_field("job.plugin_path", MIXLAB_REF(std::vector<std::string>, job.plugin_path),
                    "extra folders searched for plugins (relative to the experiment file)"),
      int_field("job.target_params", MIXLAB_REF(int64_t, job.target_params), 0, limits::kParams,
                "intended total parameters; explain reports the distance (0: none)"),
      string_field("job.level", MIXLAB_REF(std::string, job.level), {"beginner", "intermediate", "advanced", "expert"},
                   "preset level (host presets groups by it); empty: not a preset"),
      strings_field("job.references", MIXLAB_REF(std::vector<std::string>, job.references),
                    "papers the design comes from (host presets show prints them)"),
      int_field("model.d_model", MIXLAB_REF(int64_t, model.d_model), 1, limits::kWidth, "width of the residual stream", true),
      int_field("model.max_seq_len", MIXLAB_REF(int64_t, model.max_seq_len), 1, limits::kSeqLen, "longest sequence the model sees", true),
      string_field("model.norm", MIXLAB_REF(std::string, model.norm), {"rmsnorm", "layernorm"}, "normalisation layer"),
      string_field("model.norm_position", MIXLAB_REF(std::string, model.norm_position), {"pre", "post"},
                   "pre-norm (x + f(norm(x))) or post-norm (norm(x + f(x)))"),
      float_field("model.norm_eps", MIXLAB_REF(double, model.norm_eps), 0, 1, true, "epsilon of the norms"),
      bool_field("model.tie_embeddings", MIXLAB_REF(bool, model.tie_embeddings), "share the embedding and LM head"),
      string_field("model.positional", MIXLAB_REF(std::string, model.positional), {"none", "learned"},
                   "absolute position embeddings (RoPE belongs to the attention plugin)"),
      string_field("model.residual", MIXLAB_REF(std::string, model.residual), {"sequential", "parallel"},
                   "how a layer's mixer and ffn meet the residual stream: one after the other, or side by side "
                   "on one shared norm (h + mixer(norm(h)) + ffn(norm(h)), GPT-J/PaLM)"),
      string_field("model.readout", MIXLAB_REF(std::string, model.readout), {"lm", "autoencoder"},
                   "what the LM head reads: each position's features (a causal LM), or the whole sequence decoded "
                   "from the last position by MAD's autoencoder MLP (builtin:compression only; docs/experiments.md)"),
      float_field("model.dropout", MIXLAB_REF(double, model.dropout), 0, 0.9, false,
                  "dropout on the embeddings and each residual branch"),
      float_field("model.init_std", MIXLAB_REF(double, model.init_std), 0, 1, true,
                  "std of normal inits that do not set their own"),
      int_field("model.mtp.depth", MIXLAB_REF(int64_t, model.mtp.depth), 0, limits::kMtpDepth,
                "multi-token prediction modules (DeepSeek-V3): module k predicts the token k+1 ahead; "
                "training only (0: none; docs/experiments.md)"),
      float_field("model.mtp.loss_weight", MIXLAB_REF(double, model.mtp.loss_weight), 0, 100, false,
                  "lambda: the objective adds lambda / depth times the sum of the modules' losses"),
      string_field("tokenizer.kind", MIXLAB_REF(std::string, tokenizer.kind), {"byte", "sentencepiece"},
                   "byte-level (256 symbols) or a SentencePiece model trained on the training split"),
      string_field("tokenizer.model_type", MIXLAB_REF(std::string, tokenizer.model_type), {"bpe", "unigram"},
                   "SentencePiece algorithm"),
      int_field("tokenizer.vocab_size", MIXLAB_REF(int64_t, tokenizer.vocab_size), 0, limits::kVocab,
                "SentencePiece vocabulary size (required for sentencepiece)"),
      string_field("tokenizer.model_file", MIXLAB_REF(std::string, tokenizer.model_file), {},
                   "a SentencePiece model file used instead of training one (relative to the experiment file; "
                   "its piece count must equal vocab_size)"),
      string_field("data.source", MIXLAB_REF(std::string, data.source), {},
                   "text file, folder of .txt files, builtin:grammar | builtin:kjv, or a probe task (docs/data.md)",
                   true),
      float_field("data.val_fraction", MIXLAB_REF(double, data.val_fraction), 0, 0.5, true,
                  "share of a text corpus held out for validation (its end)"),
      int_field("data.seq_len", MIXLAB_REF(int64_t, data.seq_len), 1, limits::kSeqLen, "training sequence length (<= model.max_seq_len)",
                true),
      string_field("data.cache_dir", MIXLAB_REF(std::string, data.cache_dir), {},
                   "tokenizer and token-shard cache; empty: $MIXLAB_CACHE or ~/.cache/mixlab"),
      float_field("optimizer.lr", MIXLAB_REF(double, optimizer.lr), 0, 10, true, "peak learning rate (AdamW)"),
      betas_field(),
      float_field("optimizer.eps", MIXLAB_REF(double, optimizer.eps), 0, 1, true, "AdamW epsilon"),
      float_field("optimizer.weight_decay", MIXLAB_REF(double, optimizer.weight_decay), 0, 10, false,
                  "decoupled weight decay; never on norms, biases and embeddings"),
      string_field("lr_scheduler.decay_type", MIXLAB_REF(std::string, lr_scheduler.decay_type),
                   {"cosine", "linear", "constant"}, "shape of the decay after warm-up"),
      int_field("lr_scheduler.warmup_steps", MIXLAB_REF(int64_t, lr_scheduler.warmup_steps), 0, limits::kSteps, "linear warm-up steps"),
      float_field("lr_scheduler.min_lr_factor", MIXLAB_REF(double, lr_scheduler.min_lr_factor), 0, 1, false,
                  "final learning rate as a fraction of the peak"),
      int_field("training.steps", MIXLAB_REF(int64_t, training.steps), 1, limits::kSteps, "optimizer steps", true),
      int_field("training.batch_size", MIXLAB_REF(int64_t, training.batch_size), 1, limits::kBatch, "sequences per micro-batch"),
      int_field("training.grad_accum_steps", MIXLAB_REF(int64_t, training.grad_accum_steps), 1, limits::kBatch,
                "micro-batches per optimizer step"),
      float_field("training.max_norm", MIXLAB_REF(double, training.max_norm), 0, inf, false,
                  "gradient clipping norm (0: off)"),
      string_field("training.dtype", MIXLAB_REF(std::string, training.dtype), {"float32", "bfloat16"},
                   "float32, or bfloat16 autocast (parameters stay float32)"),
      string_field("training.device", MIXLAB_REF(std::string, training.device), {"cpu", "cuda", "auto"},
                   "auto: cuda when available"),
      int_field("training.threads", MIXLAB_REF(int64_t, training.threads), 0, limits::kThreads,
                "ATen intra-op threads (0: OMP_NUM_THREADS when set, else the cores shared by the local ranks)"),
      float_field("training.step_timeout_s", MIXLAB_REF(double, training.step_timeout_s), 0, 7 * 24 * 3600.0, false,
                  "fail the run when a step, validation or checkpoint takes longer (0: no limit); counted from "
                  "the first step, not during set-up"),
      string_field("training.dist_backend", MIXLAB_REF(std::string, training.dist_backend), {"auto", "gloo", "nccl"},
                   "c10d backend of a torchrun/multi-process run (auto: nccl on cuda, gloo on cpu)"),
      float_field("training.dist_timeout_s", MIXLAB_REF(double, training.dist_timeout_s), 0, 86400, true,
                  "seconds a rank waits for the others (start-up, each collective) before failing, naming them"),
      float_field("training.bucket_mib", MIXLAB_REF(double, training.bucket_mib), 0, 4096, true,
                  "MiB of gradients per all-reduce bucket in a multi-process run"),
      bool_field("training.fused", MIXLAB_REF(bool, training.fused),
                 "the host's fast paths: fused AdamW with the clipping in its kernel, chunked LM-head cross-entropy, "
                 "residual add fused with the next norm, bfloat16 weight gradients through row-major operands "
                 "(false: their naive references, for A/B; docs/experiments.md)"),
      int_field("validation.every", MIXLAB_REF(int64_t, validation.every), 0, limits::kSteps, "validate every N steps (0: only at the end)"),
      int_field("validation.batches", MIXLAB_REF(int64_t, validation.batches), 1, limits::kBatches, "validation batches"),
      int_field("checkpoint.every", MIXLAB_REF(int64_t, checkpoint.every), 0, limits::kSteps, "checkpoint every N steps (0: only at the end)"),
      int_field("checkpoint.keep_last", MIXLAB_REF(int64_t, checkpoint.keep_last), 1, limits::kKeep, "checkpoints kept"),
      int_field("metrics.log_every", MIXLAB_REF(int64_t, metrics.log_every), 1, limits::kSteps, "write a metrics line every N steps"),
  };
}

}  // namespace

std::string describe_value(const toml::node& n) {
  std::ostringstream s;
  if (n.is_string()) s << '"' << n.as_string()->get() << '"';
  else if (n.is_table()) s << "a table";
  else if (n.is_array()) s << "a list";
  else n.visit([&](const auto& v) { s << v; });
  return s.str();
}

const std::vector<Field>& schema_fields() {
  static const std::vector<Field> fields = make_fields();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema_fields())
    if (f.key == key) return &f;
  return nullptr;
}

bool is_free_form(const std::string& key) {
  return key == "model.templates" || key == "model.schedule" || key == "model.overrides" || key == "data.options" ||
         key.rfind(std::string(kExecutionModes) + ".", 0) == 0;
}

std::string schema_markdown() {
  ExperimentConfig defaults;
  std::ostringstream out;
  std::string section;
  for (const auto& f : schema_fields()) {
    std::string s = f.key.substr(0, f.key.find('.'));
    if (s != section) {
      section = s;
      out << "\n### [" << section << "]\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    }
    std::string def = f.required ? "(required)" : f.write(defaults).dump();
    out << "| `" << f.key.substr(f.key.find('.') + 1) << "` | " << f.type << " | `" << def << "` | " << f.allowed
        << " | " << f.help << " |\n";
  }
  return out.str();
}

}  // namespace mixlab
