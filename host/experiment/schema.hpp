// The experiment schema: every scalar key with its type, default, allowed
// values and meaning, in one table. The loader parses through it, `host
// validate` checks against it, and `host schema` prints docs/experiments.md's
// key reference from it (a test keeps the doc in sync).
#pragma once

#include "experiment/config.hpp"

#include <toml++/toml.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mixlab {

// Upper bounds of the sizes and counts: generous for research models, small
// enough that products of them (B*T*d, steps*tokens) fit in 64 bits and that a
// typo (an extra zero or ten) is refused with its line instead of reaching the allocator.
namespace limits {
inline constexpr int64_t kWidth = int64_t{1} << 16;      // model.d_model
inline constexpr int64_t kSeqLen = int64_t{1} << 20;     // model.max_seq_len, data.seq_len
inline constexpr int64_t kLayers = 4096;                 // all repeats of the schedule together
inline constexpr int64_t kStreams = 16;                  // parallel streams of one layer
inline constexpr int64_t kVocab = int64_t{1} << 21;      // tokenizer.vocab_size
inline constexpr int64_t kBatch = int64_t{1} << 16;      // training.batch_size, grad_accum_steps
inline constexpr int64_t kSteps = 1'000'000'000;         // steps and step intervals
inline constexpr int64_t kBatches = 1'000'000;           // validation.batches
inline constexpr int64_t kKeep = 10'000;                 // checkpoint.keep_last
inline constexpr int64_t kThreads = 4096;                // training.threads
inline constexpr int64_t kParams = 1'000'000'000'000'000;  // job.target_params
inline constexpr size_t kNameLength = 128;               // job.name
inline constexpr int64_t kMtpDepth = 16;                 // model.mtp.depth
inline constexpr int64_t kGeneratedTokens = 1'000'000;   // a generation mode's budget, generate --tokens
inline constexpr double kTokens = 4.0e18;                // tokens seen by a run (< 2^62)
}  // namespace limits

struct Field {
  std::string key;      // "training.steps"
  std::string type;     // "integer", "float", "string", "boolean", "list of floats", "list of strings"
  std::string allowed;  // "> 0", "cosine | linear | constant", ...
  std::string help;
  bool required = false;
  // Reads the node into the config; returns an error ("expected ..., got ...") or nothing.
  std::function<std::optional<std::string>(const toml::node&, ExperimentConfig&)> read;
  std::function<nlohmann::json(const ExperimentConfig&)> write;
};

const std::vector<Field>& schema_fields();
// A value for an error message: "abc" quoted, a number as written, "a table", "a list".
std::string describe_value(const toml::node& n);
const Field* find_field(const std::string& key);

// The section of generation modes, [execution_modes.NAME] (free-form: its keys are mode names).
inline constexpr const char* kExecutionModes = "execution_modes";

// Sections whose keys are free-form (handled by the loader, not the table).
bool is_free_form(const std::string& key);

// The key reference as Markdown (sections, keys, types, defaults, allowed values).
std::string schema_markdown();

}  // namespace mixlab
