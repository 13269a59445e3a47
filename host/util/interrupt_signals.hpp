// SIGINT, SIGTERM and SIGHUP (Ctrl-C, a scheduler's preemption, a closed
// terminal) ask a run to stop. While an InterruptSignals object lives they do
// not kill the process: the training worker checks requested() at each step
// boundary (checkpoint, manifest `interrupted`, exit 130); the `host run`
// supervisor polls wake_fd() and forwards each signal to its workers. The
// previous handlers come back when the object is destroyed.
#pragma once

#include <csignal>
#include <string>
#include <vector>

namespace mixlab {

class InterruptSignals {
 public:
  InterruptSignals();
  ~InterruptSignals();
  InterruptSignals(const InterruptSignals&) = delete;
  InterruptSignals& operator=(const InterruptSignals&) = delete;

  bool requested() const;    // one of the three arrived
  std::string name() const;  // the last one ("SIGTERM"), or "" when none arrived
  int wake_fd() const;       // readable when a signal arrived (for poll)
  std::vector<int> take();   // the signals that arrived since the last take(), in order

 private:
  struct sigaction previous_[3];
};

// "SIGSEGV" for 11; "signal N" when the number has no name.
std::string signal_name(int signal);

}  // namespace mixlab
