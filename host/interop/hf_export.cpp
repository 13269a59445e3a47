#include "interop/hf_export.hpp"

#include "data/probe_dataset.hpp"
#include "interop/hf_mapping.hpp"
#include "model/safetensors.hpp"
#include "train/trained_run.hpp"
#include "util/atomic_file.hpp"
#include "util/staged_dir.hpp"

#include <map>

namespace mixlab {
namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// mixlab's byte tokenizer (token id = byte value) as a `tokenizers` ByteLevel BPE
// without merges: ByteLevel maps each byte to one printable character (GPT-2's
// bytes_to_unicode), and the vocabulary maps that character back to the byte.
nlohmann::json byte_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    vocab[utf8(printable ? b : next++)] = b;
  }
  nlohmann::json byte_level{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level},
          {"post_processor", nullptr},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

}  // namespace

ExportResult export_hf(const std::filesystem::path& model_dir, const std::filesystem::path& output_dir) {
  TrainedRun run = load_trained_run(model_dir);
  HfPlan plan = plan_hf(run.config, *run.model);
  if (!plan.differences.empty()) {
    std::string msg = model_dir.string() + ": no Hugging Face class expresses this model exactly; not exported (" +
                      std::to_string(plan.differences.size()) + " difference" +
                      (plan.differences.size() == 1 ? "" : "s") + "):";
    for (const auto& d : plan.differences) msg += "\n  - " + d;
    throw std::runtime_error(msg);
  }
  std::map<std::string, torch::Tensor> params;
  for (const auto& p : run.model->parameters()) params[p.name] = p.tensor.detach();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& t : plan.tensors) {
    auto value = params.at(t.mixlab);
    if (t.expert >= 0) value = value[t.expert];
    tensors.emplace_back(t.hf, value.to(torch::kCPU, torch::kFloat32).contiguous());
  }

  StagedDir out(output_dir, "export");
  const auto& dir = out.path();
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(dir / "config.json", plan.config.dump(2) + "\n");
  write_file_atomic(dir / "generation_config.json",
                    nlohmann::json{{"max_length", run.config.model.max_seq_len}, {"do_sample", false}}.dump(2) + "\n");
  ExportResult result{plan.model_type, ""};
  const auto& kind = run.config.tokenizer.kind;
  if (kind == "byte" && run.model->vocab_size() == 256) {
    write_file_atomic(dir / "tokenizer.json", byte_tokenizer_json().dump(2) + "\n");
    write_file_atomic(dir / "tokenizer_config.json",
                      nlohmann::json{{"tokenizer_class", "PreTrainedTokenizerFast"},
                                     {"model_max_length", run.config.model.max_seq_len},
                                     {"clean_up_tokenization_spaces", false}}
                              .dump(2) + "\n");
    result.tokenizer_note = "byte tokenizer: tokenizer.json (ByteLevel, id = byte value)";
  } else if (data::is_probe_source(run.config.data.source)) {
    result.tokenizer_note = "probe-task ids are the vocabulary: no tokenizer files";
  } else {
    result.tokenizer_note = "tokenizer \"" + kind + "\" is not exported (only the byte tokenizer is); pass token ids";
  }
  out.commit();
  return result;
}

}  // namespace mixlab
