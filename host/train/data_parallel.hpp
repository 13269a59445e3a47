// Data-parallel training on PyTorch's c10d (docs/distributed.md): the launch
// environment of torchrun (or plain RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT),
// a TCPStore, a Gloo (CPU) or NCCL (CUDA) process group, and the few collective
// steps the trainer needs. Without a launch environment it is a world of one
// whose operations are identities, so the trainer has a single code path.
#pragma once

#include "data/dataset.hpp"
#include "experiment/config.hpp"
#include "train/launch_env.hpp"
#include "runtime/registry.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mixlab {

// A collective failed or timed out; the message names the rank(s) responsible.
class DistributedError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};


class GradientSync;

class DataParallel {
 public:
  // A world of one (no environment), or connects to the others: TCPStore (a client of
  // torchrun's agent store, else hosted by rank 0), then the process group. Waits at
  // most training.dist_timeout_s for every rank.
  static std::unique_ptr<DataParallel> connect(const ExperimentConfig& config, const std::optional<LaunchEnv>& env,
                                               torch::Device device);
  ~DataParallel();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool writes() const { return rank_ == 0; }  // only rank 0 writes the run folder
  const std::string& backend() const { return backend_; }
  const std::optional<LaunchEnv>& env() const { return env_; }

  // Refuses to start unless every rank has the same value; the error names the ranks that
  // differ from rank 0.
  void require_same(const std::string& what, const std::string& value);
  // The same resolved configuration and the same plugin files (SHA-256) on every rank.
  void require_same_experiment(const ExperimentConfig& config, const Registry& registry);
  // Runs `work` on rank 0 first (building a shared data cache), then on the others.
  // An error on rank 0 stops every rank with its message.
  void rank0_first(const std::string& what, const std::function<void()>& work);
  // The manifest's "distributed" section: world size, backend, every rank's host, local
  // rank and ATen threads (gathered once, a collective step), bucket size and all-reduce time.
  nlohmann::json manifest();

  // Makes every rank start from rank 0's parameters.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Gradient averaging over ranks (train/gradient_sync.hpp): call once with the model's
  // parameters, then before and after every backward; `first_of_step` zeroes the gradients,
  // `last_of_step` marks the backward whose gradients are averaged (earlier micro-batches
  // only accumulate). after_backward returns with every gradient the mean over ranks.
  // No-ops in a world of one.
  void watch_gradients(const std::vector<torch::Tensor>& parameters);
  void before_backward(bool first_of_step, bool last_of_step);
  void after_backward();
  // Sums over ranks (element-wise); identity for one process.
  std::vector<double> sum(std::vector<double> values);
  double sum(double value) { return sum(std::vector<double>{value})[0]; }
  bool any(bool flag) { return sum(flag ? 1.0 : 0.0) > 0; }

  // This rank's micro-batch `micro` of the optimizer step that began at `step_start`:
  // the global stream holds world_size * batch rows per micro-batch, rank r reads the
  // r-th slice; afterwards the position is at the end of that micro-batch for every rank.
  data::Batch next_batch(data::Dataset& dataset, uint64_t step_start, int64_t micro, int64_t batch, int64_t seq_len);

  // Marks this rank as failed in the store so the others can name it (not for the
  // DistributedError of a rank that only gave up on a failed peer).
  void report_failure(const std::exception& error) noexcept;

 private:
  struct Comm;  // the c10d store and process group (data_parallel.cpp)
  DataParallel();
  void connect_group(const ExperimentConfig& config, torch::Device device);
  nlohmann::json gather_members();
  // Rank 0 waits until every rank has read the store key(s) of `tag`; the others confirm.
  void hold_store_until_read(const std::string& tag);
  template <class F>
  auto guarded(const std::string& during, F&& f) -> decltype(f());
  [[noreturn]] void fail(const std::string& during, const std::string& reason);
  std::string key(const std::string& name) const;

  std::optional<LaunchEnv> env_;
  int rank_ = 0;
  int world_size_ = 1;
  std::string backend_ = "none";
  double timeout_s_ = 0;
  int64_t bucket_bytes_ = 0;
  std::string grad_sync_ = "overlap";  // MIXLAB_GRAD_SYNC: overlap | after_backward
  std::unique_ptr<Comm> comm_;
  std::unique_ptr<GradientSync> gradient_sync_;
  nlohmann::json members_;
};


}  // namespace mixlab
