#include "launch/worker_group.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mixlab {
namespace {

using Clock = std::chrono::steady_clock;

std::string format_seconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// A running worker as the supervisor sees it.
struct Worker {
  pid_t pid = -1;
  int beat_fd = -1;     // our end of its heartbeat socket
  std::string pending;  // heartbeat bytes before their newline
  Clock::time_point last_change;
  WorkerEnd end;
  bool running = false;
};

// The environment the worker gets, as "KEY=VALUE" strings.
std::vector<std::string> worker_environment(const WorkerCommand& command, int beat_fd) {
  auto env = command.env;
  env[heartbeat::kFdVariable] = std::to_string(beat_fd);
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    if (!env.count(entry.substr(0, entry.find('=')))) out.push_back(entry);
  }
  for (const auto& [key, value] : env)
    if (value) out.push_back(key + "=" + *value);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

Worker start(const WorkerCommand& command) {
  if (command.argv.empty()) throw std::runtime_error("a worker command is empty");
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0)
    throw std::runtime_error(std::string("cannot create a heartbeat socket (") + std::strerror(errno) + ")");
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  auto argv_strings = command.argv;
  auto env_strings = worker_environment(command, sockets[1]);
  auto argv = c_strings(argv_strings), envp = c_strings(env_strings);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sockets[0]), ::close(sockets[1]);
    throw std::runtime_error(std::string("cannot start a worker (") + std::strerror(errno) + ")");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the supervisor died before prctl
    ::fcntl(sockets[1], F_SETFD, 0);        // the worker's end survives exec
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "error: cannot execute the worker program\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no race with the first forwarded signal
  ::close(sockets[1]);
  ::fcntl(sockets[0], F_SETFL, O_NONBLOCK);
  Worker w;
  w.pid = pid;
  w.beat_fd = sockets[0];
  w.last_change = Clock::now();
  w.running = true;
  return w;
}

// Reads what the worker sent; returns true when a new beat arrived.
bool read_beats(Worker& w) {
  bool fresh = false;
  char buf[512];
  ssize_t n;
  while ((n = ::read(w.beat_fd, buf, sizeof buf)) > 0) {
    w.pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = w.pending.find('\n')) != std::string::npos) {
      if (auto beat = heartbeat::parse(w.pending.substr(0, nl))) w.end.last = beat, fresh = true;
      w.pending.erase(0, nl + 1);
    }
  }
  if (n == 0) ::close(w.beat_fd), w.beat_fd = -1;  // the worker (and its children) closed it
  return fresh;
}

// True when the worker has ended (its end is then filled in).
bool reap(Worker& w) {
  int status = 0;
  if (::waitpid(w.pid, &status, WNOHANG) != w.pid) return false;
  w.running = false;
  if (w.beat_fd >= 0) read_beats(w);
  if (WIFSIGNALED(status))
    w.end.signal = WTERMSIG(status);
  else
    w.end.exit_code = WEXITSTATUS(status);
  ::kill(-w.pid, SIGKILL);  // children it left in its process group go with it
  return true;
}

std::string timeout_message(const heartbeat::Beat& beat, double limit) {
  return heartbeat::describe(beat) + " did not finish within training.step_timeout_s = " + format_seconds(limit) + " s";
}

bool timed_phase(const std::optional<heartbeat::Beat>& beat) { return beat && beat->phase != heartbeat::Phase::finish; }

}  // namespace

std::string WorkerEnd::describe() const {
  if (signal) return "killed by signal " + std::to_string(signal) + " (" + signal_name(signal) + ")";
  return "exited with code " + std::to_string(exit_code);
}

GroupOutcome supervise_workers(const std::vector<WorkerCommand>& commands, const SupervisionOptions& options,
                               InterruptSignals& signals) {
  GroupOutcome outcome;
  std::vector<Worker> workers;
  std::optional<Clock::time_point> kill_at;  // set once workers are being stopped
  auto stop_all = [&] {
    if (kill_at) return;
    for (auto& w : workers)
      if (w.running) ::kill(-w.pid, SIGTERM), w.end.stopped = true;
    kill_at =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.stop_grace_s));
  };
  auto fail = [&](size_t rank, const std::string& what) {
    if (outcome.failed) return;
    outcome.failed = rank;
    outcome.failure = (commands.size() > 1 ? "rank " + std::to_string(rank) + ": " : "") + what;
    stop_all();
  };
  try {
    for (const auto& c : commands) workers.push_back(start(c));
  } catch (...) {
    stop_all();
    for (auto& w : workers) ::kill(-w.pid, SIGKILL), ::waitpid(w.pid, nullptr, 0);
    throw;
  }

  auto running = [&] {
    for (const auto& w : workers)
      if (w.running) return true;
    return false;
  };
  while (running()) {
    std::vector<pollfd> fds{{signals.wake_fd(), POLLIN, 0}};
    for (const auto& w : workers)
      if (w.beat_fd >= 0) fds.push_back({w.beat_fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 100);  // also wakes to reap exits and check time limits

    for (int sig : signals.take()) {
      outcome.forwarded = sig;
      for (auto& w : workers)
        if (w.running) ::kill(-w.pid, sig);
    }
    auto now = Clock::now();
    for (size_t rank = 0; rank < workers.size(); ++rank) {
      auto& w = workers[rank];
      if (w.beat_fd >= 0 && read_beats(w)) w.last_change = now;
      if (!w.running) continue;
      if (reap(w)) {
        bool interrupted = outcome.forwarded && (w.end.exit_code == 130 || w.end.signal == outcome.forwarded);
        if (!w.end.stopped && w.end.exit_code != 0 && !interrupted)
          fail(rank,
               "worker " + w.end.describe() + " during " + (w.end.last ? heartbeat::describe(*w.end.last) : "set-up"));
        continue;
      }
      if (options.step_timeout_s > 0 && timed_phase(w.end.last) && !w.end.stopped &&
          std::chrono::duration<double>(now - w.last_change).count() > options.step_timeout_s) {
        outcome.timed_out = !outcome.failed;
        fail(rank, timeout_message(*w.end.last, options.step_timeout_s));
      }
    }
    if (kill_at && now >= *kill_at)
      for (auto& w : workers)
        if (w.running) ::kill(-w.pid, SIGKILL);
  }
  for (auto& w : workers) {
    if (w.beat_fd >= 0) ::close(w.beat_fd);
    outcome.workers.push_back(w.end);
  }
  return outcome;
}

}  // namespace mixlab
