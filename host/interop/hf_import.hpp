// `host import HF_DIR --output-dir D`: a local Hugging Face folder (config.json +
// model.safetensors, or shards with model.safetensors.index.json) of an
// architecture hf_mapping expresses, turned into a mixlab model folder:
// D/experiment.toml (+ overrides.json, config.json, import.json, tokenizer.model) and
// D/model.safetensors under mixlab names, which `host forward`, `generate`,
// `export` and `run --init-from` take. D is written as D.tmp and renamed.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

struct ImportResult {
  std::string model_type;
  std::string tokenizer_note;  // what became of the folder's tokenizer
};

// Throws naming the file for anything it cannot map, and when a SentencePiece
// tokenizer.model's piece count differs from config.json's vocab_size. The folder's
// tokenizer is carried when mixlab reads it (a SentencePiece tokenizer.model is copied
// into D and named by [tokenizer] model_file); otherwise, or with `ids_only`, the
// import is ids-only (docs/interop.md).
ImportResult import_hf(const std::filesystem::path& hf_dir, const std::filesystem::path& output_dir,
                       bool ids_only = false);

}  // namespace mixlab
