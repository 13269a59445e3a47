#include "train/data_parallel.hpp"

#include "train/gradient_sync.hpp"

#include "util/error_message.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"
#include "util/system_info.hpp"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <set>
#include <thread>

namespace mixlab {

// The process groups, each in a file of its own (gloo_group.cpp, nccl_group.cpp) because each
// needs headers the build may not have; *_missing() says why one was left out ("" when built).
std::string gloo_group_missing();
std::string nccl_group_missing();
c10::intrusive_ptr<c10d::Backend> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout);
c10::intrusive_ptr<c10d::Backend> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout);

struct DataParallel::Comm {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  torch::Device device = torch::kCPU;
};

namespace {

// What a collective's or the store's failure says, without LibTorch's stack trace.
std::string error_text(const std::exception& e) { return error_message(e, "data-parallel training"); }

std::string as_string(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }
std::vector<uint8_t> as_bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

// Copies the tensors into `flat` side by side, and back.
void pack(const std::vector<torch::Tensor>& tensors, torch::Tensor& flat) {
  int64_t offset = 0;
  for (const auto& t : tensors) {
    flat.narrow(0, offset, t.numel()).copy_(t.reshape({-1}));
    offset += t.numel();
  }
}

void unpack(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
  int64_t offset = 0;
  for (const auto& t : tensors) {
    t.view({-1}).copy_(flat.narrow(0, offset, t.numel()));
    offset += t.numel();
  }
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

}  // namespace

DataParallel::DataParallel() : comm_(std::make_unique<Comm>()) {}
DataParallel::~DataParallel() = default;

std::unique_ptr<DataParallel> DataParallel::connect(const ExperimentConfig& config, const std::optional<LaunchEnv>& env,
                                                   torch::Device device) {
  std::unique_ptr<DataParallel> dp(new DataParallel());
  dp->comm_->device = device;
  dp->env_ = env;
  if (env) {
    dp->connect_group(config, device);
    log::info("rank " + std::to_string(dp->rank_) + " of " + std::to_string(dp->world_size_) + " joined (" +
              dp->backend_ + ", store " + env->master_addr + ":" + std::to_string(env->master_port) +
              (env->agent_store ? " hosted by torchrun's agent)" : ")"));
  }
  return dp;
}

void DataParallel::connect_group(const ExperimentConfig& config, torch::Device device) {
  const LaunchEnv& env = *env_;
  rank_ = env.rank;
  world_size_ = env.world_size;
  timeout_s_ = config.training.dist_timeout_s;
  bucket_bytes_ = static_cast<int64_t>(config.training.bucket_mib * 1024 * 1024);
  if (const char* mode = std::getenv("MIXLAB_GRAD_SYNC")) {
    GradientSync::parse_mode(mode);  // an unknown name is refused before anything connects
    grad_sync_ = mode;
  }
  const std::string& choice = config.training.dist_backend;
  backend_ = choice == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : choice;
  if (backend_ == "nccl" && !device.is_cuda())
    throw std::runtime_error("training.dist_backend = \"nccl\" needs training.device = \"cuda\" (use \"gloo\" on CPU)");
  if (auto why = backend_ == "nccl" ? nccl_group_missing() : gloo_group_missing(); !why.empty())
    throw std::runtime_error(why);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);

  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(env.master_port);
  // Under torchrun the agent hosts the store and every rank is a client; otherwise rank 0 hosts it.
  options.isServer = !env.agent_store && rank_ == 0;
  options.numWorkers = env.agent_store ? std::nullopt : std::optional<size_t>(world_size_);
  options.waitWorkers = false;
  options.timeout = timeout;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    // One namespace per torchrun restart, so keys of a failed attempt are never read.
    comm_->store = c10::make_intrusive<c10d::PrefixStore>("mixlab/" + std::to_string(env.restart_count), tcp);
  } catch (const std::exception& e) {
    throw DistributedError("rank " + std::to_string(rank_) + ": cannot " +
                           (options.isServer ? "host the TCPStore on port " + std::to_string(env.master_port)
                                             : "reach the TCPStore at " + where) +
                           " within training.dist_timeout_s = " + std::to_string(static_cast<int64_t>(timeout_s_)) +
                           " s: " + error_text(e));
  }
  comm_->store->set("joined/" + std::to_string(rank_), as_bytes("1"));
  try {
    if (backend_ == "nccl") {
      comm_->group = make_nccl_group(comm_->store, rank_, world_size_, timeout);
    } else {
      comm_->group = make_gloo_group(comm_->store, rank_, world_size_, timeout);
    }
  } catch (const std::exception& e) {
    std::vector<int> missing;
    try {
      for (int r = 0; r < world_size_; ++r)
        if (!comm_->store->check({"joined/" + std::to_string(r)})) missing.push_back(r);
    } catch (const std::exception&) {
    }
    throw DistributedError("rank " + std::to_string(rank_) + ": the " + backend_ + " process group did not form within " +
                           std::to_string(static_cast<int64_t>(timeout_s_)) + " s" +
                           (missing.empty() ? "" : " (" + rank_list(missing) + " never joined)") + ": " + error_text(e));
  }
}

template <class F>
auto DataParallel::guarded(const std::string& during, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    fail(during, error_text(e));
  }
}

void DataParallel::fail(const std::string& during, const std::string& reason) {
  // Every rank that gives up says so; the ranks that neither gave up nor reported an error
  // of their own are the dead or hung ones.
  const auto me = std::to_string(rank_);
  std::string blame;
  try {
    comm_->store->setTimeout(std::chrono::seconds(5));
    comm_->store->set("gave_up/" + me, as_bytes(during));
    std::this_thread::sleep_for(std::chrono::seconds(1));  // let the other survivors report too
    std::vector<int> silent;
    for (int r = 0; r < world_size_; ++r) {
      if (r == rank_) continue;
      const auto rs = std::to_string(r);
      if (comm_->store->check({"failed/" + rs}))
        blame += "rank " + rs + " failed: " + as_string(comm_->store->get("failed/" + rs)) + "; ";
      else if (!comm_->store->check({"gave_up/" + rs}))
        silent.push_back(r);
    }
    if (!silent.empty())
      blame += rank_list(silent) + " stopped responding (died or hangs; training.dist_timeout_s = " +
               std::to_string(static_cast<int64_t>(timeout_s_)) + " s); ";
  } catch (const std::exception&) {
    blame = std::string("the store is unreachable too, so ") +
            (env_->agent_store ? "torchrun's agent" : "rank 0, which hosts it,") + " is gone; ";
  }
  throw DistributedError(blame + "rank " + me + " stops (" + during + ": " + reason + ")");
}

void DataParallel::report_failure(const std::exception& error) noexcept {
  if (world_size_ == 1 || dynamic_cast<const DistributedError*>(&error)) return;
  try {
    comm_->store->set("failed/" + std::to_string(rank_), as_bytes(error_text(error)));
  } catch (...) {
  }
}

void DataParallel::require_same(const std::string& what, const std::string& value) {
  if (world_size_ == 1) return;
  std::string reference;
  auto differ = guarded("comparing " + what, [&] {
    comm_->store->set("same/" + what + "/" + std::to_string(rank_), as_bytes(value));
    std::vector<int> out;
    for (int r = 0; r < world_size_; ++r) {
      const std::string k = "same/" + what + "/" + std::to_string(r);
      comm_->store->wait({k});
      std::string v = as_string(comm_->store->get(k));
      if (r == 0) reference = v;
      else if (v != reference) out.push_back(r);
    }
    return out;
  });
  hold_store_until_read("same/" + what);
  if (!differ.empty())
    throw std::runtime_error(rank_list(differ) + (differ.size() == 1 ? " differs" : " differ") + " from rank 0 in " + what + " (rank 0: " + reference +
                             "; rank " + std::to_string(rank_) + ": " + value +
                             "): every rank must run the same experiment file, overrides and plugins");
}

void DataParallel::require_same_experiment(const ExperimentConfig& config, const Registry& registry) {
  if (world_size_ == 1) return;
  require_same("experiment (config sha256)", sha256_string(config.to_json().dump()));
  std::set<std::string> plugins;
  for (const auto& layer : config.layers())
    for (const auto& slot : layer.plugins())
      if (!slot.plugin->plugin.empty()) {
        ImplRef ref = registry.select({slot.plugin->plugin, slot.plugin->impl, slot.plugin->version});
        plugins.insert(ref.label() + " " + ref.library->sha256());
      }
  std::string listing;
  for (const auto& p : plugins) listing += p + "\n";
  require_same("plugins (sha256 of their files)", sha256_string(listing));
}

void DataParallel::hold_store_until_read(const std::string& tag) {
  // Rank 0 may host the store: when it is about to stop, its exit must not cut off the
  // others while they read the answer. Best effort, bounded by the timeout.
  try {
    if (rank_ != 0) return comm_->store->set(tag + "/read/" + std::to_string(rank_), as_bytes("1"));
    for (int r = 1; r < world_size_; ++r)
      comm_->store->wait({tag + "/read/" + std::to_string(r)},
                         std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000)));
  } catch (const std::exception&) {
  }
}

void DataParallel::rank0_first(const std::string& what, const std::function<void()>& work) {
  if (world_size_ == 1) return work();
  const std::string k = "first/" + what;
  if (rank_ == 0) {
    try {
      work();
    } catch (const std::exception& e) {
      comm_->store->set(k, as_bytes("rank 0 failed: " + error_text(e)));
      hold_store_until_read(k);
      throw;
    }
    comm_->store->set(k, as_bytes("ok"));
    hold_store_until_read(k);
    return;
  }
  // Rank 0 may build a large data cache: wait without the collective timeout.
  std::string status = guarded("waiting for rank 0 to " + what, [&] {
    comm_->store->wait({k}, std::chrono::hours(24));
    return as_string(comm_->store->get(k));
  });
  hold_store_until_read(k);
  if (status != "ok") throw std::runtime_error(status);
  work();
}

nlohmann::json DataParallel::manifest() {
  if (members_.is_null()) members_ = gather_members();
  nlohmann::json out{{"world_size", world_size_}, {"backend", backend_}, {"ranks", members_}};
  if (world_size_ == 1) return out;
  out["grad_sync"] = grad_sync_;
  out["bucket_mib"] = static_cast<double>(bucket_bytes_) / (1024.0 * 1024.0);
  if (gradient_sync_) {
    // This rank's (rank 0's) seconds summed over the steps (train/gradient_sync.hpp).
    out["buckets"] = gradient_sync_->bucket_count();
    out["rank0_allreduce_seconds"] = gradient_sync_->allreduce_seconds();
    out["rank0_allreduce_hidden_seconds"] = gradient_sync_->hidden_seconds();
    out["rank0_allreduce_exposed_seconds"] = gradient_sync_->exposed_seconds();
  }
  return out;
}

nlohmann::json DataParallel::gather_members() {
  nlohmann::json self{{"rank", rank_},
                      {"host", host_name()},
                      {"local_rank", env_ ? env_->local_rank : 0},
                      {"aten_threads", at::get_num_threads()}};
  if (world_size_ == 1) return nlohmann::json::array({self});
  return guarded("gathering the ranks' hosts", [&] {
    comm_->store->set("member/" + std::to_string(rank_), as_bytes(self.dump()));
    nlohmann::json all = nlohmann::json::array();
    for (int r = 0; r < world_size_; ++r) {
      const std::string k = "member/" + std::to_string(r);
      comm_->store->wait({k});
      all.push_back(nlohmann::json::parse(as_string(comm_->store->get(k))));
    }
    return all;
  });
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  guarded("broadcasting rank 0's parameters", [&] {
    for (const auto& members : bucket_indices(tensors, order, bucket_bytes_)) {
      std::vector<torch::Tensor> group;
      int64_t numel = 0;
      for (size_t i : members) group.push_back(tensors[i]), numel += tensors[i].numel();
      std::vector<torch::Tensor> flat{torch::empty({numel}, group.front().options().requires_grad(false))};
      pack(group, flat[0]);
      comm_->group->broadcast(flat, c10d::BroadcastOptions{})->wait();
      unpack(flat[0], group);
    }
  });
}

void DataParallel::watch_gradients(const std::vector<torch::Tensor>& parameters) {
  if (world_size_ == 1) return;
  gradient_sync_ = std::make_unique<GradientSync>(parameters, bucket_bytes_, GradientSync::parse_mode(grad_sync_),
                                                  comm_->group, world_size_);
}

void DataParallel::before_backward(bool first_of_step, bool last_of_step) {
  if (gradient_sync_) gradient_sync_->before_backward(first_of_step, last_of_step);
}

void DataParallel::after_backward() {
  if (gradient_sync_) guarded("all-reduce of the gradients", [&] { gradient_sync_->after_backward(); });
}

std::vector<double> DataParallel::sum(std::vector<double> values) {
  if (world_size_ == 1 || values.empty()) return values;
  return guarded("all-reduce of step statistics", [&] {
    std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64).to(comm_->device)};
    comm_->group->allreduce(t, c10d::AllreduceOptions{})->wait();
    auto host = t[0].to(torch::kCPU);
    return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  });
}

data::Batch DataParallel::next_batch(data::Dataset& dataset, uint64_t step_start, int64_t micro, int64_t batch,
                                     int64_t seq_len) {
  const auto global = static_cast<uint64_t>(batch) * static_cast<uint64_t>(world_size_);
  dataset.set_position(step_start + static_cast<uint64_t>(micro) * global + static_cast<uint64_t>(rank_ * batch));
  data::Batch out = dataset.next_train(batch, seq_len);
  dataset.set_position(step_start + static_cast<uint64_t>(micro + 1) * global);
  return out;
}

}  // namespace mixlab
