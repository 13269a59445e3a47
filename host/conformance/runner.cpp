#include "conformance/runner.hpp"

#include "runtime/registry.hpp"
#include "util/atomic_file.hpp"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mixlab::conformance {
namespace {

const char* kProtocolPrefix = "@@mixlab-conformance ";

// The signal that interrupted the suite (SIGINT, SIGTERM), or 0.
volatile std::sig_atomic_t g_stop_signal = 0;

// Numbers cross the worker pipe as JSON; NaN and infinities (which JSON cannot
// hold, and nlohmann writes as null) travel as the strings "nan", "inf", "-inf".
nlohmann::json encode_number(double x) {
  if (std::isfinite(x)) return x;
  return std::isnan(x) ? "nan" : x > 0 ? "inf" : "-inf";
}

double decode_number(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  if (j == "inf") return std::numeric_limits<double>::infinity();
  if (j == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

std::string decode_string(const nlohmann::json& msg, const char* key) {
  auto it = msg.find(key);
  return it != msg.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A verdict message from the worker; nullopt when it is not one.
std::optional<Outcome> decode_outcome(const nlohmann::json& msg) {
  if (!msg.is_object() || decode_string(msg, "check").empty()) return std::nullopt;
  Outcome o;
  o.check = decode_string(msg, "check");
  std::string v = decode_string(msg, "verdict");
  o.verdict = v == "PASS" ? Verdict::Pass : v == "SKIP" ? Verdict::Skip : Verdict::Fail;
  o.error = decode_number(msg.value("error", nlohmann::json()));
  o.tolerance = decode_number(msg.value("tolerance", nlohmann::json()));
  o.message = decode_string(msg, "message");
  o.seconds = decode_number(msg.value("seconds", nlohmann::json()));
  return o;
}

// One protocol line (invalid UTF-8 in a plugin's message is replaced, never thrown on).
std::string protocol_line(const nlohmann::json& j) {
  return kProtocolPrefix + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// One worker process running a list of checks; reports arrive as lines.
class Worker {
 public:
  Worker(const Subject& s, const std::vector<std::string>& checks) {
    std::vector<std::string> args{"/proc/self/exe", "conformance-worker",  "--file", s.file.string(),
                                  "--impl",         s.impl,                "--config", s.config_json,
                                  "--dtype",        join(s.dtypes, ","),   "--seed", std::to_string(s.seed),
                                  "--d-model",      std::to_string(s.d_model), "--max-seq-len",
                                  std::to_string(s.max_seq_len), "--device", s.device,
                                  "--checks", join(checks, ",")};
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
    // A process group of its own: a Ctrl-C reaches the runner, which reports
    // what it knows and then kills the worker (the worker dies with the runner: run_worker).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    int rc = posix_spawn(&pid_, exe.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) throw std::runtime_error(std::string("cannot start a conformance worker: ") + std::strerror(rc));
    fd_ = fds[0];
  }
  ~Worker() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // The next protocol message (a discarded value if garbled), or nullopt on
  // end of stream, after `timeout_s`, or when the suite is interrupted.
  std::optional<nlohmann::json> next(double timeout_s, bool& timed_out) {
    timed_out = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (true) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        // The plugin's own output may precede a protocol message on its line.
        auto at = line.find(kProtocolPrefix);
        if (at != 0) std::cout << "    | " << line.substr(0, at) << "\n";
        if (at == std::string::npos) continue;
        return nlohmann::json::parse(line.substr(at + std::strlen(kProtocolPrefix)), nullptr, false);
      }
      if (g_stop_signal) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        return std::nullopt;
      }
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200)));
      if (r <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  // Kills (if still running) and describes how the worker ended.
  std::string finish(bool kill_it) {
    if (kill_it) kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
};

// Runs `checks` for one subject, restarting the worker after a crash, and
// hands each verdict to `report` as it arrives. A hang costs one timeout per
// implementation: after it, the checks not yet run are reported as failed
// without waiting again. Returns false when the suite was interrupted.
bool run_subject(const Subject& s, std::vector<std::string> checks, double timeout_s,
                 const std::function<void(const Outcome&)>& report) {
  auto fail = [&](const std::string& check, double seconds, const std::string& message) {
    Outcome o;
    o.check = check;
    o.verdict = Verdict::Fail;
    o.seconds = seconds;
    o.message = message;
    report(o);
    checks.erase(std::remove(checks.begin(), checks.end(), check), checks.end());
  };
  while (!checks.empty()) {
    Worker worker(s, checks);
    std::string current;
    bool timed_out = false;
    auto start = std::chrono::steady_clock::now();
    while (auto msg = worker.next(timeout_s, timed_out)) {
      if (msg->is_object() && msg->contains("begin")) {
        current = decode_string(*msg, "begin");
        start = std::chrono::steady_clock::now();
      } else if (auto o = decode_outcome(*msg)) {
        report(*o);
        checks.erase(std::remove(checks.begin(), checks.end(), o->check), checks.end());
        current.clear();
      } else {
        std::cout << "    | (unreadable message from the worker: " << msg->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << ")\n";
      }
    }
    if (g_stop_signal) return false;
    std::string how = worker.finish(timed_out);
    if (current.empty() && !checks.empty()) current = checks.front();  // died before announcing a check
    if (current.empty()) break;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!timed_out) {
      fail(current, seconds, "the worker process died in this check: " + how);
      continue;
    }
    std::string hung = "hung: no result after " + std::to_string(static_cast<int>(timeout_s)) + " s (worker killed)";
    fail(current, seconds, hung);
    for (auto rest = checks; const auto& check : rest)
      fail(check, 0.0, "not run: " + current + " hung in this implementation, so its other checks are not waited for");
  }
  return true;
}

void print_outcome(const Outcome& o) {
  std::ostringstream line;
  line << "  " << verdict_name(o.verdict) << "  " << o.check;
  std::string pad(o.check.size() < 34 ? 34 - o.check.size() : 1, ' ');
  line << pad << std::fixed;
  line.precision(2);
  line << o.seconds << "s  " << o.message;
  std::cout << line.str() << std::endl;
}

void write_junit(const std::string& path, const std::vector<std::pair<std::string, std::vector<Outcome>>>& suites) {
  namespace pt = boost::property_tree;
  pt::ptree root;
  auto& all = root.add_child("testsuites", pt::ptree());
  for (const auto& [name, outcomes] : suites) {
    pt::ptree suite;
    int failures = 0, skipped = 0;
    double time = 0;
    for (const auto& o : outcomes) {
      pt::ptree tc;
      tc.put("<xmlattr>.classname", name);
      tc.put("<xmlattr>.name", o.check);
      tc.put("<xmlattr>.time", o.seconds);
      if (o.verdict == Verdict::Fail) tc.add("failure.<xmlattr>.message", o.message), ++failures;
      if (o.verdict == Verdict::Skip) tc.add("skipped.<xmlattr>.message", o.message), ++skipped;
      tc.put("system-out", o.message + " (error " + std::to_string(o.error) + ", tolerance " +
                               std::to_string(o.tolerance) + ")");
      suite.add_child("testcase", tc);
      time += o.seconds;
    }
    suite.put("<xmlattr>.name", name);
    suite.put("<xmlattr>.tests", outcomes.size());
    suite.put("<xmlattr>.failures", failures);
    suite.put("<xmlattr>.skipped", skipped);
    suite.put("<xmlattr>.time", time);
    all.add_child("testsuite", suite);
  }
  std::ostringstream out;
  pt::write_xml(out, root, pt::xml_writer_make_settings<std::string>(' ', 2));
  write_file_atomic(path, out.str());
}

}  // namespace

int run_conformance(const RunnerOptions& options) {
  if (options.base.device == "cuda" && !torch::cuda::is_available()) {
    std::cerr << "error: --device cuda: LibTorch " << TORCH_VERSION << " sees no CUDA device on this machine"
              << " (no GPU or driver, or a CPU-only LibTorch); use --device cpu\n";
    return 2;
  }
  // Resolve the target to (file, implementation) subjects.
  std::vector<Subject> subjects;
  std::error_code ec;
  Registry registry;
  std::filesystem::path as_path(options.target);
  if (std::filesystem::is_regular_file(as_path, ec)) {
    if (!registry.add_file(as_path)) {
      std::cerr << "error: " << registry.refused().front().second << "\n";
      return 2;
    }
  } else {
    registry = Registry::discover();
  }
  for (const auto& ref : registry.impls()) {
    bool named = std::filesystem::is_regular_file(as_path, ec) || options.target == ref.impl->name;
    if (!named || (options.impl && *options.impl != ref.impl->impl)) continue;
    Subject s = options.base;
    s.file = ref.library->path();
    s.impl = ref.impl->impl;
    subjects.push_back(s);
  }
  if (subjects.empty()) {
    std::cerr << "error: no plugin implementation matches \"" << options.target << "\""
              << (options.impl ? " with impl \"" + *options.impl + "\"" : std::string()) << "\n";
    for (const auto& [file, why] : registry.refused()) std::cerr << "  refused: " << why << "\n";
    return 2;
  }

  int passed = 0, failed = 0, skipped = 0;
  std::vector<std::pair<std::string, std::vector<Outcome>>> suites;
  std::set<std::string> libraries_with_family_checks;
  // SIGINT or SIGTERM stops the suite; what is known is still reported and written.
  struct sigaction stop {}, old_int {}, old_term {};
  stop.sa_handler = [](int sig) { g_stop_signal = sig; };  // no SA_RESTART: poll() returns at once
  sigemptyset(&stop.sa_mask);
  g_stop_signal = 0;
  sigaction(SIGINT, &stop, &old_int);
  sigaction(SIGTERM, &stop, &old_term);
  for (const auto& s : subjects) {
    if (g_stop_signal) break;
    // The library's own checks run once, with its first implementation.
    bool family = libraries_with_family_checks.insert(s.file.string()).second;
    std::vector<std::string> checks = check_names(s, family);
    if (!options.only.empty()) {
      std::vector<std::string> kept;
      for (const auto& c : checks)
        if (std::find(options.only.begin(), options.only.end(), c) != options.only.end()) kept.push_back(c);
      checks = kept;
    }
    std::cout << "conformance: " << s.file.filename().string() << " impl " << s.impl << "  (config " << s.config_json
              << ", d_model " << s.d_model << ", seed " << s.seed << ", device " << s.device << ")" << std::endl;
    suites.emplace_back(s.file.filename().string() + ":" + s.impl, std::vector<Outcome>{});
    run_subject(s, checks, options.timeout_s, [&](const Outcome& o) {
      print_outcome(o);
      (o.verdict == Verdict::Pass ? passed : o.verdict == Verdict::Fail ? failed : skipped)++;
      suites.back().second.push_back(o);
    });
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (options.junit) write_junit(*options.junit, suites);
  std::cout << "conformance: " << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  if (g_stop_signal) {
    std::cout << "conformance: interrupted by " << strsignal(g_stop_signal) << "; the verdicts above are all that ran"
              << (options.junit ? " (and are in " + *options.junit + ")" : std::string()) << std::endl;
    return 3;
  }
  return failed == 0 ? 0 : 1;
}

int run_worker(const Subject& subject, const std::vector<std::string>& checks) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the runner (a hanging plugin would spin forever)
  for (const auto& name : checks) {
    std::cout << protocol_line({{"begin", name}}) << std::endl;
    Outcome o = run_check(subject, name);
    nlohmann::json j{{"check", o.check},
                     {"verdict", verdict_name(o.verdict)},
                     {"error", encode_number(o.error)},
                     {"tolerance", encode_number(o.tolerance)},
                     {"message", o.message},
                     {"seconds", encode_number(o.seconds)}};
    std::cout << protocol_line(j) << std::endl;
  }
  return 0;
}

}  // namespace mixlab::conformance
