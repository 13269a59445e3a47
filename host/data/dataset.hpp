// The data pipeline of `host run`: a corpus (text or probe task), its
// tokenizer, and deterministic train/validation batches. See docs/data.md.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/error.hpp"
#include "data/tokenizer.hpp"

namespace mixlab::data {

struct DataSpec {
  // A UTF-8 text file, a folder of .txt files, or "builtin:grammar" | "builtin:mqar" | "builtin:copy" | "builtin:kjv".
  std::string source;
  double val_fraction = 0.1;  // text corpora: the LAST fraction of the text is validation (no overlap)
  uint64_t seed = 0;
  std::map<std::string, double> options;  // builtin generator parameters (docs/data.md); unknown keys -> DataError
};

struct Batch {
  torch::Tensor inputs;   // (B, T) int64
  torch::Tensor targets;  // (B, T) int64, -100 where not scored
  torch::Tensor classes;  // (B, T) int64 class of each TARGET token (-1 = none); undefined without classes
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  // Builds or loads from cache_dir/<name>-<hash of spec and tokenizer spec>/: the tokenizer
  // (SentencePiece is trained on the train split and cached) and the train/val token shards.
  // Probe tasks (mqar, copy) generate their examples on demand and write nothing.
  static std::unique_ptr<Dataset> open(const DataSpec& data, const TokenizerSpec& tok,
                                       const std::filesystem::path& cache_dir);

  virtual const Tokenizer& tokenizer() const = 0;
  virtual int64_t train_tokens() const = 0;
  virtual int64_t val_tokens() const = 0;

  // Training batches, deterministic from (seed, position): random windows (text) or
  // examples in a per-epoch shuffled order (probe tasks). The position counts the rows
  // drawn so far; it is saved in checkpoints and restored for an exact resume.
  virtual Batch next_train(int64_t batch, int64_t seq_len) = 0;
  uint64_t position() const { return position_; }
  void set_position(uint64_t position) { position_ = position; }

  // Contiguous non-overlapping windows from the start of the val split (probe tasks: the
  // held-out examples in order), at most max_batches batches (<= 0: all). The last batch
  // may have fewer rows.
  virtual std::vector<Batch> validation(int64_t batch, int64_t seq_len, int64_t max_batches) const = 0;

  virtual double val_bytes_per_token() const = 0;    // UTF-8 bytes per val token, for bits per byte (0: probe task)
  virtual double unigram_cross_entropy() const = 0;  // nats/token of the add-one train unigram model on val targets
  virtual std::vector<std::string> class_names() const { return {}; }
  virtual bool is_probe_task() const = 0;  // accuracy is measured on targets != -100
  virtual std::string describe() const = 0;  // one line for logs and the manifest

  // Whether open() found everything in its cache (nothing was generated, trained or tokenised).
  virtual bool loaded_from_cache() const { return false; }
  // The folder holding this corpus's cache; empty for probe tasks.
  virtual std::filesystem::path cache_path() const { return {}; }

 protected:
  uint64_t position_ = 0;
};

}  // namespace mixlab::data
