#include "train/gradient_sync.hpp"

#include <torch/csrc/autograd/function_hook.h>

#include <algorithm>
#include <stdexcept>

namespace mixlab {

std::vector<std::vector<size_t>> bucket_indices(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& order,
                                                int64_t bytes) {
  std::vector<std::vector<size_t>> out;
  int64_t filled = 0;
  for (size_t i : order) {
    const auto& t = tensors[i];
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    if (out.empty() || filled + size > bytes || tensors[out.back().front()].scalar_type() != t.scalar_type()) {
      out.emplace_back();
      filled = 0;
    }
    out.back().push_back(i);
    filled += size;
  }
  return out;
}

// Called by autograd once a parameter's gradient has been accumulated into .grad.
struct GradientSync::ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradientSync* sync, size_t parameter) : sync(sync), parameter(parameter) {}
  void operator()(const torch::autograd::Variable& /*tensor*/) override { sync->mark_ready(parameter); }
  GradientSync* sync;
  size_t parameter;
};

GradientSync::Mode GradientSync::parse_mode(const std::string& name) {
  if (name == "overlap") return Mode::overlap;
  if (name == "after_backward") return Mode::after_backward;
  throw std::invalid_argument("gradient synchronisation \"" + name + "\": expected \"overlap\" or \"after_backward\"");
}

GradientSync::GradientSync(std::vector<torch::Tensor> parameters, int64_t bucket_bytes, Mode mode,
                           c10::intrusive_ptr<c10d::Backend> group, int world_size)
    : parameters_(std::move(parameters)),
      views_(parameters_.size()),
      bucket_of_(parameters_.size()),
      ready_(parameters_.size()),
      mode_(mode),
      group_(std::move(group)),
      world_size_(world_size) {
  // Reverse order: backward produces the last layers' gradients first.
  std::vector<size_t> order(parameters_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = order.size() - 1 - i;
  for (auto& members : bucket_indices(parameters_, order, bucket_bytes)) {
    Bucket b;
    int64_t numel = 0;
    for (size_t i : members) numel += parameters_[i].numel();
    b.flat = torch::empty({numel}, parameters_[members.front()].options().requires_grad(false));
    int64_t offset = 0;
    for (size_t i : members) {
      // An alias of the bucket's storage rather than an autograd view: the optimizer's
      // zero_grad detaches gradients in place, which autograd refuses on a view.
      views_[i] = torch::empty({0}, b.flat.options()).set_(b.flat.storage(), offset, parameters_[i].sizes());
      offset += parameters_[i].numel(), bucket_of_[i] = buckets_.size();
    }
    b.members = std::move(members);
    buckets_.push_back(std::move(b));
  }
  if (mode_ != Mode::overlap) return;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (torch::autograd::impl::post_acc_grad_hooks(parameters_[i]))
      throw std::logic_error("GradientSync: a parameter already has a post-accumulate-grad hook");
    torch::autograd::impl::set_post_acc_grad_hooks(parameters_[i], std::make_unique<ReadyHook>(this, i));
  }
}

GradientSync::~GradientSync() {
  if (mode_ == Mode::overlap)
    for (const auto& p : parameters_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::before_backward(bool first_of_step, bool last_of_step) {
  if (first_of_step) {
    // Gradients accumulate in place into their bucket (autograd adds to a defined .grad).
    for (auto& b : buckets_) b.flat.zero_();
    for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].mutable_grad() = views_[i];
  }
  armed_ = last_of_step;
  if (!armed_) return;
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) b.pending = b.members.size(), b.work.reset(), b.finished.reset();
  next_launch_ = 0;
}

void GradientSync::mark_ready(size_t parameter) {
  if (!armed_) return;  // an accumulation micro-batch: the gradient only accumulates
  if (ready_[parameter])
    throw std::logic_error("GradientSync: parameter " + std::to_string(parameter) + "'s gradient was ready twice in one backward");
  ready_[parameter] = true;
  if (--buckets_[bucket_of_[parameter]].pending == 0) launch_ready_buckets();
}

void GradientSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(buckets_[next_launch_++]);
}

void GradientSync::launch(Bucket& b) {
  for (size_t i : b.members)
    if (!parameters_[i].grad().is_same(views_[i]))
      throw std::logic_error("GradientSync: parameter " + std::to_string(i) + "'s gradient is no longer its bucket's view");
  b.launched = Clock::now();
  std::vector<torch::Tensor> tensors{b.flat};
  b.work = group_->allreduce(tensors, c10d::AllreduceOptions{});
  // Completion time for the overlap measurement; `finished` completes once it is recorded
  // (shared, so a work that outlives this object after an error writes to live memory).
  b.done = std::make_shared<Clock::time_point>();
  b.finished = b.work->getFuture()->then(
      [done = b.done](c10::ivalue::Future&) {
        *done = Clock::now();
        return c10::IValue();
      },
      c10::NoneType::get());
}

void GradientSync::after_backward() {
  if (!armed_) return;
  armed_ = false;
  const auto backward_end = Clock::now();
  // Parameters whose hook did not run: every one in after_backward mode, and in overlap mode
  // those without a gradient in this step (their view holds zeros, or what earlier
  // micro-batches accumulated), so every rank reduces the same buckets.
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (ready_[i]) continue;
    ready_[i] = true;
    --buckets_[bucket_of_[i]].pending;
  }
  launch_ready_buckets();
  for (auto& b : buckets_) {
    b.work->wait();
    b.finished->wait();
    b.flat.div_(world_size_);
  }
  record_times(backward_end, Clock::now());
}

void GradientSync::record_times(Clock::time_point backward_end, Clock::time_point averaged) {
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  exposed_s_ += seconds(averaged - backward_end);
  // The union of the buckets' [launched, done] intervals, and its part before backward ended.
  std::vector<std::pair<Clock::time_point, Clock::time_point>> spans;
  for (const auto& b : buckets_) spans.emplace_back(b.launched, *b.done);
  if (spans.empty()) return;
  std::sort(spans.begin(), spans.end());
  auto start = spans.front().first, end = spans.front().second;
  auto add = [&] {
    in_flight_s_ += seconds(end - start);
    if (start < backward_end) hidden_s_ += seconds(std::min(end, backward_end) - start);
  };
  for (const auto& [s, e] : spans) {
    if (s > end) add(), start = s, end = e;
    else end = std::max(end, e);
  }
  add();
}

}  // namespace mixlab
