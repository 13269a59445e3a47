#include "train/checkpoint.hpp"

#include "model/safetensors.hpp"
#include "util/atomic_file.hpp"
#include "util/fault_point.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

namespace mixlab {
namespace {

// The files DONE vouches for, each with its size and SHA-256.
const std::vector<std::string>& checkpoint_files() {
  static const std::vector<std::string> files{"model.safetensors", "optimizer.safetensors", "trainer_state.json"};
  return files;
}
const std::string kStatPrefix = "last_stats.";

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

std::string checksums(const std::filesystem::path& dir) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& name : checkpoint_files())
    files[name] = {{"bytes", std::filesystem::file_size(dir / name)}, {"sha256", sha256_file(dir / name)}};
  return nlohmann::json{{"files", files}}.dump(2) + "\n";
}

std::string shape(const torch::Tensor& t) { return c10::str(t.sizes()); }

}  // namespace

void save_checkpoint(const std::filesystem::path& run_dir, const Model& model, torch::optim::AdamW& optimizer,
                     const TrainerState& state, int64_t keep_last) {
  auto root = run_dir / "checkpoints";
  std::filesystem::create_directories(root);
  auto final_dir = checkpoint_dir(run_dir, state.step);
  auto tmp = root / (step_name(state.step) + ".tmp");
  // This step again (an interrupt just after a periodic checkpoint): an intact copy holds the same
  // state and is kept, so that no moment exists without it.
  if (std::filesystem::exists(final_dir / "DONE") && verify_checkpoint(final_dir).problem.empty()) return;
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
  for (const auto& [name, value] : state.last_stats) moments.emplace_back(kStatPrefix + name, value);
  save_safetensors(tmp / "model.safetensors", weights, {{"format", "pt"}, {"step", std::to_string(state.step)}});
  fault_point(kFaultCheckpointWrite, state.step);
  save_safetensors(tmp / "optimizer.safetensors", moments);
  write_file_atomic(tmp / "trainer_state.json", state.to_json().dump(2));
  std::string done = checksums(tmp);
  std::filesystem::remove_all(final_dir);
  std::filesystem::rename(tmp, final_dir);
  fault_point(kFaultCheckpointDone, state.step);
  write_file_atomic(final_dir / "DONE", done);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw std::runtime_error("writing checkpoint " + final_dir.string() + " failed (" + e.what() +
                             "); the previous checkpoint is kept");
  }

  auto all = complete_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) std::filesystem::remove_all(all[i]);
}

std::filesystem::path checkpoint_dir(const std::filesystem::path& run_dir, int64_t step) {
  return run_dir / "checkpoints" / step_name(step);
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir) {
  auto all = complete_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

CheckpointCheck verify_checkpoint(const std::filesystem::path& dir) {
  CheckpointCheck check;
  const auto done_file = dir / "DONE";
  std::error_code ec;
  auto done_bytes = std::filesystem::file_size(done_file, ec);
  if (ec) {
    check.problem = done_file.string() + " is missing";
    return check;
  }
  if (done_bytes == 0) return check;  // written before checkpoints carried checksums
  std::ifstream in(done_file);
  auto done = nlohmann::json::parse(in, nullptr, false);
  auto damaged_done = [&](const std::string& why) {
    check.problem = done_file.string() + " is damaged (" + why + ")";
    return check;
  };
  if (done.is_discarded() || !done.is_object() || !done.contains("files") || !done["files"].is_object())
    return damaged_done("not the JSON list of checksums it should be");
  for (const auto& name : checkpoint_files()) {
    const auto& files = done["files"];
    if (!files.contains(name)) return damaged_done("no checksum for " + name);
    const auto& entry = files[name];
    if (!entry.is_object() || !entry.contains("bytes") || !entry["bytes"].is_number_unsigned() ||
        !entry.contains("sha256") || !entry["sha256"].is_string())
      return damaged_done("the entry of " + name + " lacks its bytes or sha256");
    const auto file = dir / name;
    auto bytes = std::filesystem::file_size(file, ec);
    if (ec) {
      check.problem = file.string() + " is missing";
      return check;
    }
    if (bytes != entry["bytes"].get<uint64_t>()) {
      check.problem = file.string() + " has " + std::to_string(bytes) + " bytes, DONE says " +
                      std::to_string(entry["bytes"].get<uint64_t>());
      return check;
    }
    std::string sum;
    try {
      sum = sha256_file(file);
    } catch (const std::exception& e) {
      check.problem = e.what();
      return check;
    }
    if (sum != entry["sha256"].get<std::string>()) {
      check.problem = file.string() + " does not match its SHA-256 in DONE (its bytes changed)";
      return check;
    }
  }
  check.verified = true;
  return check;
}

void assign_weights(const SafetensorsFile& weights, const std::filesystem::path& file, Model& model) {
  std::map<std::string, torch::Tensor> by_name(weights.tensors.begin(), weights.tensors.end());
  std::vector<std::string> problems;
  for (const auto& p : model.parameters()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) problems.push_back("missing    " + p.name + " " + c10::str(p.tensor.sizes()));
    else if (it->second.sizes() != p.tensor.sizes())
      problems.push_back("shape      " + p.name + " is " + shape(it->second) + " in the file, the model expects " +
                         shape(p.tensor));
    else if (it->second.scalar_type() != p.tensor.scalar_type())
      problems.push_back("dtype      " + p.name + " is " + c10::toString(it->second.scalar_type()) +
                         " in the file, the model expects " + c10::toString(p.tensor.scalar_type()));
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

std::optional<std::filesystem::path> newest_intact_checkpoint(const std::filesystem::path& run_dir) {
  auto all = complete_checkpoints(run_dir);
  std::string damage;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    auto check = verify_checkpoint(*it);
    if (check.problem.empty()) {
      if (!damage.empty()) log::warn("falling back to the newest intact checkpoint " + it->string());
      if (!check.verified)
        log::warn(it->string() + ": written before checkpoints carried checksums (empty DONE); its files are not verified");
      return *it;
    }
    log::warn("checkpoint " + it->string() + " is damaged: " + check.problem);
    damage += (damage.empty() ? "" : "; ") + check.problem;
  }
  if (damage.empty()) return std::nullopt;
  throw std::runtime_error(run_dir.string() + ": every checkpoint is damaged: " + damage);
}

TrainerState load_checkpoint(const std::filesystem::path& dir, Model& model, torch::optim::AdamW* optimizer) {
  const auto state_file = dir / "trainer_state.json", weights_file = dir / "model.safetensors",
             optimizer_file = dir / "optimizer.safetensors";
  std::ifstream in(state_file);
  if (!in) throw std::runtime_error(state_file.string() + ": cannot read");
  auto state_json = nlohmann::json::parse(in, nullptr, false);
  if (state_json.is_discarded()) throw std::runtime_error(state_file.string() + ": not valid JSON");
  TrainerState state = TrainerState::from_json(state_json, state_file.string());

  auto weights = load_safetensors(weights_file);
  auto step_meta = weights.metadata.find("step");
  if (step_meta == weights.metadata.end())
    throw std::runtime_error(weights_file.string() + ": no \"step\" in its metadata (not a mixlab checkpoint?)");
  if (step_meta->second != std::to_string(state.step))
    throw std::runtime_error(state_file.string() + ": field \"step\" is " + std::to_string(state.step) + ", but " +
                             weights_file.string() + " holds the weights of step " + step_meta->second);
  assign_weights(weights, weights_file, model);
  if (!optimizer) return state;

  // An optimizer moment must match its parameter's shape and dtype.
  auto require_like = [](const std::filesystem::path& file, const std::string& name, const torch::Tensor& t,
                         const torch::Tensor& param) {
    if (t.sizes() != param.sizes())
      throw std::runtime_error(file.string() + ": tensor " + name + " has shape " + shape(t) + ", the model expects " +
                               shape(param));
    if (t.scalar_type() != param.scalar_type())
      throw std::runtime_error(file.string() + ": tensor " + name + " has dtype " + c10::toString(t.scalar_type()) +
                               ", the model expects " + c10::toString(param.scalar_type()));
  };
  auto moments = load_safetensors(optimizer_file);
  std::map<std::string, torch::Tensor> m(moments.tensors.begin(), moments.tensors.end());
  std::set<std::string> known{"rng.cpu"};
  for (const auto& p : model.parameters()) {
    const std::string avg = p.name + ".exp_avg", avg_sq = p.name + ".exp_avg_sq", step = p.name + ".step";
    known.insert({avg, avg_sq, step});
    if (!m.count(avg) && !m.count(avg_sq) && !m.count(step)) continue;  // a parameter the optimizer has not stepped
    for (const auto& name : {avg, avg_sq, step})
      if (!m.count(name)) throw std::runtime_error(optimizer_file.string() + ": no tensor " + name + " (the other moments of " + p.name + " are there)");
    require_like(optimizer_file, avg, m.at(avg), p.tensor);
    require_like(optimizer_file, avg_sq, m.at(avg_sq), p.tensor);
    const auto& s = m.at(step);
    if (s.scalar_type() != torch::kInt64 || s.numel() != 1)
      throw std::runtime_error(optimizer_file.string() + ": tensor " + step + " must be one int64, got " + shape(s) + " " +
                               c10::toString(s.scalar_type()));
    if (s.item<int64_t>() < 0 || s.item<int64_t>() > state.step)
      throw std::runtime_error(optimizer_file.string() + ": tensor " + step + " is " + std::to_string(s.item<int64_t>()) +
                               ", not within the checkpoint's " + std::to_string(state.step) + " steps");
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->exp_avg(m.at(avg).to(p.tensor.device()));
    adam->exp_avg_sq(m.at(avg_sq).to(p.tensor.device()));
    adam->step(s.item<int64_t>());
    optimizer->state()[p.tensor.unsafeGetTensorImpl()] = std::move(adam);
  }
  for (const auto& [name, t] : m) {
    if (name.rfind(kStatPrefix, 0) == 0) state.last_stats[name.substr(kStatPrefix.size())] = t;
    else if (!known.count(name))
      throw std::runtime_error(optimizer_file.string() + ": tensor " + name + " belongs to no parameter of this model");
  }
  if (!m.count("rng.cpu")) throw std::runtime_error(optimizer_file.string() + ": no tensor rng.cpu (the random generator's state)");
  try {
    at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
    cpu_generator.set_state(m.at("rng.cpu"));
  } catch (const c10::Error&) {
    throw std::runtime_error(optimizer_file.string() + ": tensor rng.cpu is not the state of a CPU random generator");
  }
  return state;
}

}  // namespace mixlab
