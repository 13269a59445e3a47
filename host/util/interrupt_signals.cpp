#include "util/interrupt_signals.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace mixlab {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> g_received{0};
int g_wake[2] = {-1, -1};  // self-pipe: the handler writes each signal's number

void on_signal(int signal) {
  int saved = errno;
  g_received = signal;
  unsigned char byte = static_cast<unsigned char>(signal);
  (void)!::write(g_wake[1], &byte, 1);
  errno = saved;
}

}  // namespace

InterruptSignals::InterruptSignals() {
  g_received = 0;
  if (g_wake[0] < 0 && ::pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error(std::string("cannot create a pipe for signals (") + std::strerror(errno) + ")");
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // library calls (file writes) go on undisturbed
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &previous_[i]);
}

InterruptSignals::~InterruptSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  take();  // the pipe stays (a later object reuses it), emptied
}

bool InterruptSignals::requested() const { return g_received != 0; }

std::string InterruptSignals::name() const { return requested() ? signal_name(g_received) : ""; }

int InterruptSignals::wake_fd() const { return g_wake[0]; }

std::vector<int> InterruptSignals::take() {
  std::vector<int> out;
  unsigned char buf[64];
  ssize_t n;
  while ((n = ::read(g_wake[0], buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  return out;
}

std::string signal_name(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

}  // namespace mixlab
