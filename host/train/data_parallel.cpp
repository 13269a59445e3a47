#include "train/data_parallel.hpp"

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

std::string rank_list(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

// Consecutive tensors of one dtype, at most `bytes` per group (a larger tensor is a group of its own).
std::vector<std::vector<torch::Tensor>> buckets(const std::vector<torch::Tensor>& tensors, int64_t bytes) {
  std::vector<std::vector<torch::Tensor>> out;
  int64_t filled = 0;
  for (const auto& t : tensors) {
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    if (out.empty() || filled + size > bytes || out.back().front().scalar_type() != t.scalar_type()) {
      out.emplace_back();
      filled = 0;
    }
    out.back().push_back(t);
    filled += size;
  }
  return out;
}

torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  return torch::cat(flat);
}

void unflatten(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
  int64_t offset = 0;
  for (const auto& t : tensors) {
    t.view({-1}).copy_(flat.narrow(0, offset, t.numel()));
    offset += t.numel();
  }
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
    for (const auto* choice : {&layer.mixer, &layer.ffn})
      if (!choice->plugin.empty()) {
        ImplRef ref = registry.select({choice->plugin, choice->impl, choice->version});
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
  return {{"world_size", world_size_},
          {"backend", backend_},
          {"ranks", members_},
          {"bucket_mib", static_cast<double>(bucket_bytes_) / (1024.0 * 1024.0)},
          {"buckets", bucket_count_},
          {"rank0_allreduce_seconds", allreduce_seconds_}};
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
  guarded("broadcasting rank 0's parameters", [&] {
    for (const auto& bucket : buckets(tensors, bucket_bytes_)) {
      std::vector<torch::Tensor> flat{flatten(bucket)};
      comm_->group->broadcast(flat, c10d::BroadcastOptions{})->wait();
      unflatten(flat[0], bucket);
    }
  });
}

void DataParallel::average_gradients(const std::vector<torch::Tensor>& parameters) {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  auto start = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> grads;
  for (auto p : parameters) {
    // A parameter this rank did not use (an idle expert) contributes zeros, so every rank
    // reduces the same buckets.
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  auto groups = buckets(grads, bucket_bytes_);
  bucket_count_ = static_cast<int64_t>(groups.size());
  guarded("all-reduce of the gradients", [&] {
    // Launch every bucket, then wait: Gloo works through them while later ones are packed.
    std::vector<std::vector<torch::Tensor>> flats;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (const auto& bucket : groups) {
      flats.push_back({flatten(bucket)});
      works.push_back(comm_->group->allreduce(flats.back(), c10d::AllreduceOptions{}));
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      works[i]->wait();
      unflatten(flats[i][0].div_(world_size_), groups[i]);
    }
  });
  allreduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

torch::Tensor DataParallel::mean(const torch::Tensor& value) {
  if (world_size_ == 1) return value;
  return guarded("all-reduce of plugin statistics", [&] {
    std::vector<torch::Tensor> t{value.to(comm_->device, torch::kFloat64).contiguous().clone()};
    comm_->group->allreduce(t, c10d::AllreduceOptions{})->wait();
    return (t[0] / world_size_).to(value.device(), value.scalar_type());
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
