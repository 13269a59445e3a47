#include "interop/hf_export.hpp"

#include "interop/hf_mapping.hpp"
#include "experiment/experiment_data.hpp"
#include "interop/hf_tokenizer.hpp"
#include "model/safetensors.hpp"
#include "train/trained_run.hpp"
#include "util/atomic_file.hpp"
#include "util/staged_dir.hpp"

#include <map>

namespace mixlab {

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

  // The tokenizer first: a SentencePiece one comes from the experiment's data (trained if not cached).
  HfTokenizerFiles tokenizer;
  const int64_t vocab = run.model->vocab_size(), max_len = run.config.model.max_seq_len;
  std::unique_ptr<data::Tokenizer> own;
  std::unique_ptr<data::Dataset> dataset;
  const data::Tokenizer* tok = nullptr;
  if (run.config.data.source == "builtin:mqar" || run.config.data.source == "builtin:copy")
    tok = (own = data::make_id_tokenizer(vocab)).get();
  else if (run.config.tokenizer.kind == "byte") tok = (own = data::make_byte_tokenizer()).get();
  else tok = &(dataset = open_dataset(run.config))->tokenizer();
  if (tok->vocab_size() == vocab) tokenizer = hf_tokenizer_files(*tok, max_len, plan.model_type);
  else tokenizer.note = "no tokenizer files: the model's vocabulary is " + std::to_string(vocab) + ", the experiment's " +
                        tok->kind() + " tokenizer has " + std::to_string(tok->vocab_size()) + "; pass token ids";
  plan.config.update(tokenizer.special_ids);

  StagedDir out(output_dir, "export");
  const auto& dir = out.path();
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(dir / "config.json", plan.config.dump(2) + "\n");
  nlohmann::json generation{{"max_length", run.config.model.max_seq_len}, {"do_sample", false}};
  for (const auto& id : tokenizer.special_ids.items())
    if (!id.value().is_null()) generation[id.key()] = id.value();
  write_file_atomic(dir / "generation_config.json", generation.dump(2) + "\n");
  for (const auto& [name, contents] : tokenizer.files) write_file_atomic(dir / name, contents);
  ExportResult result{plan.model_type, tokenizer.note, plan.left_out};
  out.commit();
  return result;
}

}  // namespace mixlab
