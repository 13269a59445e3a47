// Running a command in a shell and capturing what it prints (stdout and
// stderr together) with its exit code, for the tests that drive `host`.
#pragma once

#include <array>
#include <cstdio>
#include <string>

#include <sys/wait.h>

namespace mixlab::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// stdout and stderr together; with `with_stderr` false, stdout alone (for JSON output).
// With timeout_s > 0 the (simple) command is killed after that many seconds and the
// exit code is 124: a test of something that used to hang fails instead of hanging.
inline CommandResult run_command(const std::string& command, int timeout_s = 0, bool with_stderr = true) {
  CommandResult r;
  std::string line = timeout_s > 0 ? "timeout -k 5 " + std::to_string(timeout_s) + " " + command : command;
  FILE* pipe = popen((line + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) r.output += buf.data();
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace mixlab::test
