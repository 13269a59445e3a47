// Broken on purpose, late: a correct mixer until its training forward call
// number `step` (0-based: with grad_accum_steps = 1, `step` optimizer steps of
// this process complete first), where it does `fault`:
//   "segfault", "abort", "kill" (SIGKILL, as the out-of-memory killer sends),
//   "hang" (never returns), or
//   "sigterm_parent", "sighup_parent": sends the signal to its parent (the
//   `host run` supervisor, as a scheduler or a closed terminal would) and
//   goes on,
//   "nan_gradient": returns its usual, finite y plus sqrt(0 · x), which is 0
//   forward and NaN backward (0 · ∞), as a derivative undefined where its
//   function is defined would be.
// With step = -1 the fault happens when the worker creates the model (set-up;
// only in a supervised worker, recognised by its heartbeat variable, not in
// the supervisor's own plugin check).
#include "prefix_mean.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include <unistd.h>

class FaultAtStep : public mixlab::test::PrefixMean {
 public:
  static mixlab::ImplInfo info() { return {MIXLAB_FAMILY_MIXER, "fault_at_step", "default", "1.0.0", "faults late"}; }
  explicit FaultAtStep(const mixlab::CreateArgs& args)
      : PrefixMean(args),
        step_(args.config.get<int64_t>("step", 0)),
        fault_(args.config.get<std::string>("fault", "segfault")) {
    static const char* faults[] = {"segfault", "abort", "kill", "hang", "sigterm_parent", "sighup_parent", "nan_gradient"};
    if (std::none_of(std::begin(faults), std::end(faults), [&](const char* f) { return fault_ == f; }))
      throw mixlab::config_error("fault",
                                 "must be segfault, abort, kill, hang, sigterm_parent, sighup_parent or nan_gradient");
    if (step_ < 0 && std::getenv("MIXLAB_HEARTBEAT_FD")) fault();
  }
  mixlab::Output forward(const torch::Tensor& x, const mixlab::Params& p, const mixlab::Call& c) const override {
    auto out = PrefixMean::forward(x, p, c);
    if (!(c.training && calls_++ == step_)) return out;
    if (fault_ == "nan_gradient") return {out.y + torch::sqrt(x * 0.0)};
    fault();
    return out;
  }

 private:
  void fault() const {
    if (fault_ == "segfault") std::raise(SIGSEGV);
    if (fault_ == "abort") std::abort();
    if (fault_ == "kill") std::raise(SIGKILL);
    if (fault_ == "sigterm_parent") ::kill(::getppid(), SIGTERM);
    if (fault_ == "sighup_parent") ::kill(::getppid(), SIGHUP);
    while (fault_ == "hang") std::this_thread::sleep_for(std::chrono::seconds(1));
  }

  int64_t step_;
  std::string fault_;
  mutable int64_t calls_ = 0;
};

MIXLAB_PLUGIN(mixlab::impl<FaultAtStep>())
