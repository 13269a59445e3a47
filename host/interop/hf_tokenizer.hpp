// A mixlab tokenizer as the files a Hugging Face folder carries, so that
// transformers.AutoTokenizer gives the same ids (docs/interop.md, "Tokenizers"):
//   byte           tokenizer.json (ByteLevel BPE without merges: id = byte value)
//   sentencepiece  tokenizer.model (the model file itself) and tokenizer.json
//                  (the same pieces and scores as a `tokenizers` Unigram or BPE
//                  with byte fallback), when the model's settings are ones a
//                  tokenizer.json states exactly
//   ids            nothing: probe-task ids are the vocabulary
// Both tokenizer.json kinds come with tokenizer_config.json naming
// PreTrainedTokenizerFast (transformers 5: TokenizersBackend), which takes
// tokenizer.json as written; no sentencepiece or protobuf is needed to load it.
#pragma once

#include "data/tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace mixlab {

struct HfTokenizerFiles {
  std::map<std::string, std::string> files;  // file name -> contents
  std::string note;                          // what was written, or why not
  // bos/eos/pad ids (null when the tokenizer has none), for config.json and generation_config.json
  nlohmann::json special_ids = {{"bos_token_id", nullptr}, {"eos_token_id", nullptr}, {"pad_token_id", nullptr}};
};

// `model_type`: the exported class's; for qwen2 transformers' AutoTokenizer substitutes its own
// tokenizer class (Qwen2Tokenizer: NFC, byte-level), so a SentencePiece tokenizer.json is not written.
HfTokenizerFiles hf_tokenizer_files(const data::Tokenizer& tokenizer, int64_t model_max_length,
                                    const std::string& model_type);

// mixlab's byte tokenizer as tokenizer.json (import recognises it).
nlohmann::json byte_tokenizer_json();

}  // namespace mixlab
