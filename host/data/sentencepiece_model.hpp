// The fields of a SentencePiece model file (a serialized sentencepiece.ModelProto)
// that libsentencepiece's public header does not show: the algorithm, each piece's
// type, and the normaliser settings. Export needs them to write the same tokenizer
// as a Hugging Face tokenizer.json; import, to tell what it was given. Read with a
// small protobuf wire-format reader (field numbers from sentencepiece_model.proto).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab::data {

struct SentencePieceModel {
  // sentencepiece.ModelProto.SentencePiece.Type
  enum class PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  struct Piece {
    std::string text;
    float score = 0.0f;
    PieceType type = PieceType::Normal;
  };
  std::vector<Piece> pieces;
  std::string model_type = "unigram";  // "unigram" | "bpe" | "word" | "char"
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer = "nmt_nfkc";  // the normalisation rule's name ("identity": none)
  bool has_charsmap = false;            // a precompiled normalisation map is present
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Throws DataError naming `source` when the bytes are not a SentencePiece model.
SentencePieceModel parse_sentencepiece_model(const std::string& serialized, const std::string& source);

}  // namespace mixlab::data
