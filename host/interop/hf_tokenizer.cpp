#include "interop/hf_tokenizer.hpp"

#include "data/sentencepiece_tokenizer.hpp"

#include <algorithm>
#include <tuple>
#include <unordered_map>

namespace mixlab {
namespace {

using json = nlohmann::json;
using SpModel = data::SentencePieceModel;
using PieceType = SpModel::PieceType;

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

json tokenizer_config(int64_t model_max_length, const json& special_tokens) {
  json c{{"tokenizer_class", "PreTrainedTokenizerFast"},
         {"model_max_length", model_max_length},
         {"clean_up_tokenization_spaces", false},
         {"add_bos_token", false},
         {"add_eos_token", false}};
  c.update(special_tokens);
  return c;
}

// Why a tokenizer.json cannot state this SentencePiece model exactly ("" when it can).
// mixlab encodes text line by line, each '\n' as the byte piece <0x0A>; with the settings
// below, encoding the whole text at once (as `tokenizers` does) gives the same pieces.
std::string not_expressible(const SpModel& m) {
  if (m.model_type != "bpe" && m.model_type != "unigram") return "model type " + m.model_type + " (bpe or unigram map)";
  if (!m.byte_fallback) return "no byte fallback";
  if (m.normalizer != "identity" || m.has_charsmap) return "normalisation \"" + m.normalizer + "\" (identity maps)";
  if (m.add_dummy_prefix) return "add_dummy_prefix (mixlab adds it to every line, a tokenizer.json to the text)";
  if (m.remove_extra_whitespaces) return "remove_extra_whitespaces (applied per line by mixlab)";
  if (!m.escape_whitespaces || m.treat_whitespace_as_suffix) return "whitespace not escaped as a \xE2\x96\x81 prefix";
  for (const auto& p : m.pieces) {
    if (p.type == PieceType::UserDefined) return "user-defined piece \"" + p.text + "\"";
    if (p.type == PieceType::Normal && p.text.find('\n') != std::string::npos)
      return "a piece containing a newline (mixlab always encodes '\\n' as <0x0A>)";
  }
  return "";
}

// BPE merges equivalent to SentencePiece's BPE encoding, which repeatedly joins the adjacent
// pair whose concatenation is the highest-scoring piece: every split of a normal piece into two
// normal pieces, ranked by the joined piece's score.
json bpe_merges(const SpModel& m) {
  std::unordered_map<std::string, size_t> normal;
  for (size_t i = 0; i < m.pieces.size(); ++i)
    if (m.pieces[i].type == PieceType::Normal) normal.emplace(m.pieces[i].text, i);
  std::vector<std::tuple<float, size_t, size_t, size_t>> merges;  // -score, joined id, left id, right id
  for (const auto& [text, id] : normal)
    for (size_t k = 1; k < text.size(); ++k) {
      if ((static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      auto left = normal.find(text.substr(0, k)), right = normal.find(text.substr(k));
      if (left != normal.end() && right != normal.end())
        merges.emplace_back(-m.pieces[id].score, id, left->second, right->second);
    }
  std::sort(merges.begin(), merges.end());
  json out = json::array();
  for (const auto& [score, id, left, right] : merges) out.push_back({m.pieces[left].text, m.pieces[right].text});
  return out;
}

json sentencepiece_tokenizer_json(const SpModel& m) {
  json added = json::array();
  for (size_t i = 0; i < m.pieces.size(); ++i)
    if (m.pieces[i].type == PieceType::Control || m.pieces[i].type == PieceType::Unknown)
      added.push_back({{"id", i}, {"content", m.pieces[i].text}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  json model;
  if (m.model_type == "unigram") {
    json vocab = json::array();
    for (const auto& p : m.pieces) vocab.push_back({p.text, p.score});
    model = {{"type", "Unigram"}, {"unk_id", m.unk_id}, {"vocab", vocab}, {"byte_fallback", true}};
  } else {
    json vocab = json::object();
    for (size_t i = 0; i < m.pieces.size(); ++i) vocab[m.pieces[i].text] = i;
    model = {{"type", "BPE"},         {"dropout", nullptr},  {"unk_token", m.pieces.at(m.unk_id).text},
             {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true},
             {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", bpe_merges(m)}};
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}}}}}},
          {"model", model}};
}

HfTokenizerFiles sentencepiece_files(const data::SentencePieceTokenizer& tok, int64_t model_max_length,
                                     const std::string& model_type) {
  const SpModel& m = tok.model();
  HfTokenizerFiles out;
  json tokens = json::object();
  for (auto [name, id] : {std::pair{"unk", m.unk_id}, std::pair{"bos", m.bos_id}, std::pair{"eos", m.eos_id},
                          std::pair{"pad", m.pad_id}}) {
    const bool has = id >= 0 && id < static_cast<int32_t>(m.pieces.size());
    tokens[std::string(name) + "_token"] = has ? json(m.pieces[id].text) : json(nullptr);
    if (std::string(name) != "unk") out.special_ids[std::string(name) + "_token_id"] = has ? json(id) : json(nullptr);
  }
  out.files["tokenizer.model"] = tok.serialized_model();
  std::string why = not_expressible(m);
  if (why.empty() && model_type == "qwen2")
    why = "transformers' AutoTokenizer replaces the class for model_type qwen2 by Qwen2Tokenizer, a byte-level BPE";
  if (!why.empty()) {
    out.note = "SentencePiece " + m.model_type + ": tokenizer.model only; no tokenizer.json, because it cannot state " +
               "mixlab's encoding of this model exactly: " + why;
    return out;
  }
  out.files["tokenizer.json"] = sentencepiece_tokenizer_json(m).dump(2) + "\n";
  out.files["tokenizer_config.json"] = tokenizer_config(model_max_length, tokens).dump(2) + "\n";
  out.note = "SentencePiece " + m.model_type + " (" + std::to_string(m.pieces.size()) +
             " pieces): tokenizer.model, tokenizer.json (" + (m.model_type == "bpe" ? "BPE" : "Unigram") +
             ", byte fallback)";
  return out;
}

}  // namespace

// mixlab's byte tokenizer (token id = byte value) as a `tokenizers` ByteLevel BPE
// without merges: ByteLevel maps each byte to one printable character (GPT-2's
// bytes_to_unicode), and the vocabulary maps that character back to the byte.
json byte_tokenizer_json() {
  json vocab = json::object();
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    vocab[utf8(printable ? b : next++)] = b;
  }
  json byte_level{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level},
          {"post_processor", nullptr},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", json::array()}}}};
}

HfTokenizerFiles hf_tokenizer_files(const data::Tokenizer& tokenizer, int64_t model_max_length,
                                    const std::string& model_type) {
  if (const auto* sp = dynamic_cast<const data::SentencePieceTokenizer*>(&tokenizer))
    return sentencepiece_files(*sp, model_max_length, model_type);
  HfTokenizerFiles out;
  if (tokenizer.kind() == "byte") {
    // No special tokens, said explicitly: a class transformers substitutes (Qwen2Tokenizer) adds its own otherwise.
    const json none{{"unk_token", nullptr}, {"bos_token", nullptr}, {"eos_token", nullptr}, {"pad_token", nullptr}};
    out.files["tokenizer.json"] = byte_tokenizer_json().dump(2) + "\n";
    out.files["tokenizer_config.json"] = tokenizer_config(model_max_length, none).dump(2) + "\n";
    out.note = "byte tokenizer: tokenizer.json (ByteLevel, id = byte value)";
    if (model_type == "qwen2") out.note += "; AutoTokenizer loads it as Qwen2Tokenizer, which NFC-normalises text first";
  } else {
    out.note = "probe-task ids are the vocabulary: no tokenizer files";
  }
  return out;
}

}  // namespace mixlab
