// Averaging the gradients over the ranks of a data-parallel run (docs/distributed.md), in
// buckets of training.bucket_mib, two ways that give the same numbers:
//   overlap         the way DDP does it: buckets hold the parameters in reverse order (the
//                   order backward produces their gradients); a hook after each gradient's
//                   accumulation counts it, and a bucket whose gradients are all there is
//                   all-reduced asynchronously while backward goes on (buckets start in
//                   order on every rank, so the collectives match across ranks);
//   after_backward  the naive form: every bucket is all-reduced once backward is done.
// Either way each gradient is a view into its bucket (DDP's gradient_as_bucket_view), so
// nothing is copied in or out.
// Only the last backward of a step is synchronised; earlier micro-batches only accumulate
// (DDP's no_sync). A parameter without a gradient in a step (an idle expert) is counted at
// the end of backward with zeros, so no rank waits for a gradient that never comes.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixlab {

// Groups of consecutive tensors of `order` (indices into `tensors`), of one dtype and at most
// `bytes` each (a larger tensor is a group of its own).
std::vector<std::vector<size_t>> bucket_indices(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& order,
                                                int64_t bytes);

class GradientSync {
 public:
  enum class Mode { overlap, after_backward };
  static Mode parse_mode(const std::string& name);  // "overlap" | "after_backward"

  // `parameters` in the model's order; the same shapes and order on every rank.
  GradientSync(std::vector<torch::Tensor> parameters, int64_t bucket_bytes, Mode mode,
               c10::intrusive_ptr<c10d::Backend> group, int world_size);
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Before each backward: whether it is the step's first (the gradients become zeroed views
  // into the buckets) and its last (whose gradients are averaged).
  void before_backward(bool first_of_step, bool last_of_step);
  // After that backward: returns when every gradient is the mean over ranks. Throws what a
  // collective throws (a dead or hung rank).
  void after_backward();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  // Summed over steps: seconds with at least one all-reduce in flight; how many of them
  // passed while backward was still running (hidden); seconds from the end of backward
  // until the averaged gradients were in place (what the step waits for: exposed).
  double allreduce_seconds() const { return in_flight_s_; }
  double hidden_seconds() const { return hidden_s_; }
  double exposed_seconds() const { return exposed_s_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    std::vector<size_t> members;  // parameter indices, in the bucket's order
    torch::Tensor flat;           // the members' gradients side by side
    size_t pending = 0;           // members whose gradient is not ready yet in this backward
    c10::intrusive_ptr<c10d::Work> work;
    c10::intrusive_ptr<c10::ivalue::Future> finished;  // completes after `done` is set
    Clock::time_point launched;
    std::shared_ptr<Clock::time_point> done;  // set when the all-reduce completes
  };
  struct ReadyHook;

  void mark_ready(size_t parameter);  // from the hook, on the thread running backward
  void launch_ready_buckets();        // in bucket order, so every rank issues the same sequence
  void launch(Bucket& bucket);
  void record_times(Clock::time_point backward_end, Clock::time_point averaged);

  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> views_;  // each parameter's gradient: a view into its bucket
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter index -> bucket index
  std::vector<bool> ready_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  Mode mode_;
  c10::intrusive_ptr<c10d::Backend> group_;
  int world_size_;
  double in_flight_s_ = 0, hidden_s_ = 0, exposed_s_ = 0;
};

}  // namespace mixlab
