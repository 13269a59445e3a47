#include "train/compile_model.hpp"

#include "experiment/loader.hpp"
#include "model/explain.hpp"
#include "model/model.hpp"
#include "model/safetensors.hpp"
#include "runtime/registry.hpp"
#include "train/run_folder.hpp"
#include "util/atomic_file.hpp"
#include "util/staged_dir.hpp"

#include <iostream>
#include <sstream>

namespace mixlab {

int64_t compile_experiment(const std::filesystem::path& experiment, const std::vector<std::string>& overrides,
                           const std::filesystem::path& output_dir) {
  ExperimentConfig config = load_experiment(experiment, overrides);
  Registry registry = experiment_registry(config);
  auto problems = check_plugins(config, registry);
  if (!problems.empty()) throw ExperimentError(problems);
  StagedDir out(output_dir, "compile");
  auto report = explain_report(config, registry);
  // The tokenizer is not trained here: the vocabulary is the one explain plans.
  Model model(config, registry, report["vocab_size"].get<int64_t>(), torch::kCPU);

  const auto& tmp = out.path();
  std::vector<std::pair<std::string, torch::Tensor>> weights;
  int64_t n = 0;
  for (const auto& p : model.parameters()) {
    weights.emplace_back(p.name, p.tensor);
    n += p.tensor.numel();
  }
  save_safetensors(tmp / "model.safetensors", weights,
                   {{"format", "pt"}, {"name", config.job.name}, {"seed", std::to_string(config.job.seed)}});
  write_file_atomic(tmp / "config.json", config.to_json().dump(2) + "\n");
  std::filesystem::copy_file(experiment, tmp / "experiment.toml");
  write_file_atomic(tmp / "overrides.json", nlohmann::json(overrides).dump() + "\n");
  carry_tokenizer_file(config, tmp, overrides);
  write_file_atomic(tmp / "explain.json", report.dump(2) + "\n");
  std::ostringstream text;
  auto* old = std::cout.rdbuf(text.rdbuf());
  print_explain(config, report);
  std::cout.rdbuf(old);
  write_file_atomic(tmp / "explain.txt", text.str());
  out.commit();
  return n;
}

}  // namespace mixlab
