#include "util/heartbeat.hpp"

#include <cstdlib>
#include <sstream>

#include <fcntl.h>
#include <sys/socket.h>

namespace mixlab::heartbeat {
namespace {

constexpr Phase kPhases[] = {Phase::train, Phase::validate, Phase::checkpoint, Phase::finish};

// The descriptor from the environment, read once; -1 without a supervisor.
int channel() {
  static const int fd = [] {
    const char* v = std::getenv(kFdVariable);
    if (!v) return -1;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0 || fcntl(static_cast<int>(n), F_GETFD) < 0) return -1;
    fcntl(static_cast<int>(n), F_SETFD, FD_CLOEXEC);  // not for our own children (gnuplot, git)
    return static_cast<int>(n);
  }();
  return fd;
}

}  // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::train:
      return "train";
    case Phase::validate:
      return "validate";
    case Phase::checkpoint:
      return "checkpoint";
    case Phase::finish:
      return "finish";
  }
  return "?";
}

std::string describe(const Beat& beat) {
  std::string step = std::to_string(beat.step);
  switch (beat.phase) {
    case Phase::train:
      return "step " + std::to_string(beat.step + 1);
    case Phase::validate:
      return "validation after step " + step;
    case Phase::checkpoint:
      return "the checkpoint of step " + step;
    case Phase::finish:
      return "writing the results after step " + step;
  }
  return "step " + step;
}

void send(Phase phase, int64_t step) {
  int fd = channel();
  if (fd < 0) return;
  std::string line = std::string(phase_name(phase)) + " " + std::to_string(step) + "\n";
  // MSG_NOSIGNAL: a supervisor that died must not kill the worker with SIGPIPE.
  (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::optional<Beat> parse(const std::string& line) {
  std::istringstream in(line);
  std::string name;
  int64_t step = -1;
  if (!(in >> name >> step) || step < 0) return std::nullopt;
  for (Phase p : kPhases)
    if (name == phase_name(p)) return Beat{p, step};
  return std::nullopt;
}

}  // namespace mixlab::heartbeat
