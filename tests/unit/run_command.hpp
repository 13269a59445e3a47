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
inline CommandResult run_command(const std::string& command, bool with_stderr = true) {
  CommandResult r;
  FILE* pipe = popen((command + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) r.output += buf.data();
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace mixlab::test
