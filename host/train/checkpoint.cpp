#include "train/checkpoint.hpp"

#include "model/safetensors.hpp"
#include "util/atomic_file.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

std::string step_name(int64_t step) {
  std::ostringstream s;
  s << "step-" << std::setw(8) << std::setfill('0') << step;
  return s.str();
}

torch::optim::AdamWParamState* adam_state(torch::optim::AdamW& opt, const torch::Tensor& p) {
  auto it = opt.state().find(p.unsafeGetTensorImpl());
  return it == opt.state().end() ? nullptr : static_cast<torch::optim::AdamWParamState*>(it->second.get());
}

std::vector<std::filesystem::path> complete_checkpoints(const std::filesystem::path& run_dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  auto dir = run_dir / "checkpoints";
  if (!std::filesystem::is_directory(dir, ec)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind("step-", 0) == 0 && std::filesystem::exists(e.path() / "DONE"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"tokens", tokens},
          {"data_position", data_position},
          {"best_val_loss", std::isfinite(best_val_loss) ? nlohmann::json(best_val_loss) : nlohmann::json(nullptr)},
          {"best_step", best_step}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j) {
  TrainerState s;
  s.step = j.at("step");
  s.tokens = j.at("tokens");
  s.data_position = j.at("data_position");
  if (!j.at("best_val_loss").is_null()) s.best_val_loss = j.at("best_val_loss");
  s.best_step = j.at("best_step");
  return s;
}

void save_checkpoint(const std::filesystem::path& run_dir, const Model& model, torch::optim::AdamW& optimizer,
                     const TrainerState& state, int64_t keep_last) {
  auto root = run_dir / "checkpoints";
  std::filesystem::create_directories(root);
  auto final_dir = root / step_name(state.step);
  auto tmp = root / (step_name(state.step) + ".tmp");
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  try {
  std::vector<std::pair<std::string, torch::Tensor>> weights, moments;
  for (const auto& p : model.parameters()) {
    weights.emplace_back(p.name, p.tensor);
    if (auto* s = adam_state(optimizer, p.tensor)) {
      moments.emplace_back(p.name + ".exp_avg", s->exp_avg());
      moments.emplace_back(p.name + ".exp_avg_sq", s->exp_avg_sq());
      moments.emplace_back(p.name + ".step", torch::tensor({s->step()}, torch::kInt64));
    }
  }
  moments.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  save_safetensors(tmp / "model.safetensors", weights, {{"format", "pt"}, {"step", std::to_string(state.step)}});
  save_safetensors(tmp / "optimizer.safetensors", moments);
  write_file_atomic(tmp / "trainer_state.json", state.to_json().dump(2));
  std::filesystem::remove_all(final_dir);
  std::filesystem::rename(tmp, final_dir);
  write_file_atomic(final_dir / "DONE", "");
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw std::runtime_error("writing checkpoint " + final_dir.string() + " failed (" + e.what() +
                             "); the previous checkpoint is kept");
  }

  auto all = complete_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) std::filesystem::remove_all(all[i]);
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir) {
  auto all = complete_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void assign_weights(const SafetensorsFile& weights, const std::filesystem::path& file, Model& model) {
  std::map<std::string, torch::Tensor> by_name(weights.tensors.begin(), weights.tensors.end());
  std::vector<std::string> problems;
  for (const auto& p : model.parameters()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) problems.push_back("missing    " + p.name + " " + c10::str(p.tensor.sizes()));
    else if (it->second.sizes() != p.tensor.sizes())
      problems.push_back("shape      " + p.name + " is " + c10::str(it->second.sizes()) + " in the file, the model expects " +
                         c10::str(p.tensor.sizes()));
  }
  std::set<std::string> expected;
  for (const auto& p : model.parameters()) expected.insert(p.name);
  for (const auto& [name, t] : weights.tensors)
    if (!expected.count(name)) problems.push_back("unexpected " + name + " " + c10::str(t.sizes()));
  if (!problems.empty()) {
    std::string msg = file.string() + ": the weights do not match the experiment's model (" +
                      std::to_string(problems.size()) + " tensor" + (problems.size() == 1 ? "" : "s") + "):";
    for (const auto& p : problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  }
  torch::NoGradGuard no_grad;
  for (const auto& p : model.parameters()) p.tensor.copy_(by_name.at(p.name));
}

void load_weights(const std::filesystem::path& file, Model& model) { assign_weights(load_safetensors(file), file, model); }

TrainerState load_checkpoint(const std::filesystem::path& dir, Model& model, torch::optim::AdamW* optimizer) {
  load_weights(dir / "model.safetensors", model);
  if (optimizer) {
    auto moments = load_safetensors(dir / "optimizer.safetensors");
    std::map<std::string, torch::Tensor> m(moments.tensors.begin(), moments.tensors.end());
    for (const auto& p : model.parameters()) {
      if (!m.count(p.name + ".exp_avg")) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->exp_avg(m.at(p.name + ".exp_avg").to(p.tensor.device()));
      s->exp_avg_sq(m.at(p.name + ".exp_avg_sq").to(p.tensor.device()));
      s->step(m.at(p.name + ".step").item<int64_t>());
      optimizer->state()[p.tensor.unsafeGetTensorImpl()] = std::move(s);
    }
    at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    cpu_generator.set_state(m.at("rng.cpu"));
  }
  std::ifstream in(dir / "trainer_state.json");
  return TrainerState::from_json(nlohmann::json::parse(in));
}

}  // namespace mixlab
