#include "conformance/runner.hpp"

#include "runtime/registry.hpp"
#include "util/atomic_file.hpp"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mixlab::conformance {
namespace {

const char* kProtocolPrefix = "@@mixlab-conformance ";

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
                                  std::to_string(s.max_seq_len), "--checks", join(checks, ",")};
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
    int rc = posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv.data(), environ);
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

  // The next protocol message, or nullopt on end of stream or after `timeout_s`.
  std::optional<nlohmann::json> next(double timeout_s, bool& timed_out) {
    timed_out = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (true) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.rfind(kProtocolPrefix, 0) == 0) return nlohmann::json::parse(line.substr(std::strlen(kProtocolPrefix)));
        std::cout << "    | " << line << "\n";  // the plugin's own output
        continue;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        return std::nullopt;
      }
      pollfd p{fd_, POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
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

// Runs `checks` for one subject, restarting the worker after a crash or hang.
std::vector<Outcome> run_subject(const Subject& s, std::vector<std::string> checks, double timeout_s) {
  std::vector<Outcome> outcomes;
  while (!checks.empty()) {
    Worker worker(s, checks);
    std::string current;
    bool timed_out = false;
    auto start = std::chrono::steady_clock::now();
    while (true) {
      auto msg = worker.next(timeout_s, timed_out);
      if (!msg) break;
      if (msg->contains("begin")) {
        current = (*msg)["begin"];
        start = std::chrono::steady_clock::now();
        continue;
      }
      Outcome o;
      o.check = (*msg)["check"];
      std::string v = (*msg)["verdict"];
      o.verdict = v == "PASS" ? Verdict::Pass : v == "SKIP" ? Verdict::Skip : Verdict::Fail;
      o.error = (*msg)["error"];
      o.tolerance = (*msg)["tolerance"];
      o.message = (*msg)["message"];
      o.seconds = (*msg)["seconds"];
      outcomes.push_back(o);
      auto done = std::find(checks.begin(), checks.end(), o.check);
      if (done != checks.end()) checks.erase(done);
      current.clear();
    }
    std::string how = worker.finish(timed_out);
    if (current.empty() && !checks.empty()) current = checks.front();  // died before announcing a check
    if (current.empty()) break;
    Outcome o;
    o.check = current;
    o.verdict = Verdict::Fail;
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    o.message = timed_out ? "hung: no result after " + std::to_string(static_cast<int>(timeout_s)) + " s (worker killed)"
                          : "the worker process died in this check: " + how;
    outcomes.push_back(o);
    auto died = std::find(checks.begin(), checks.end(), current);
    checks.erase(died != checks.end() ? died : checks.begin());
  }
  return outcomes;
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
  for (const auto& s : subjects) {
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
              << ", d_model " << s.d_model << ", seed " << s.seed << ")" << std::endl;
    auto outcomes = run_subject(s, checks, options.timeout_s);
    for (const auto& o : outcomes) {
      print_outcome(o);
      (o.verdict == Verdict::Pass ? passed : o.verdict == Verdict::Fail ? failed : skipped)++;
    }
    suites.emplace_back(s.file.filename().string() + ":" + s.impl, outcomes);
  }
  if (options.junit) write_junit(*options.junit, suites);
  std::cout << "conformance: " << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  return failed == 0 ? 0 : 1;
}

int run_worker(const Subject& subject, const std::vector<std::string>& checks) {
  for (const auto& name : checks) {
    std::cout << kProtocolPrefix << nlohmann::json{{"begin", name}}.dump() << std::endl;
    Outcome o = run_check(subject, name);
    nlohmann::json j{{"check", o.check},     {"verdict", verdict_name(o.verdict)},
                     {"error", o.error},     {"tolerance", o.tolerance},
                     {"message", o.message}, {"seconds", o.seconds}};
    std::cout << kProtocolPrefix << j.dump() << std::endl;
  }
  return 0;
}

}  // namespace mixlab::conformance
