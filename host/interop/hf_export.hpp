// `host export MODEL_DIR --format hf --output-dir D`: a folder that
// transformers.AutoModelForCausalLM.from_pretrained(D) loads with its native
// classes (no remote code): config.json, model.safetensors (HF names),
// generation_config.json and the tokenizer (byte, SentencePiece: hf_tokenizer.hpp).
// Refused, with every difference listed, when no HF class
// expresses the model exactly. D is written as D.tmp and renamed.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

struct ExportResult {
  std::string model_type;
  std::string tokenizer_note;  // what was written for the tokenizer, or why nothing
  std::string left_out;        // what of the model is not in the folder and why ("": nothing)
};

ExportResult export_hf(const std::filesystem::path& model_dir, const std::filesystem::path& output_dir);

}  // namespace mixlab
