// A run folder in use: an exclusive flock on RUN_DIR/.lock, taken by the
// `host run` supervisor (a new run or --resume) and inherited by its workers
// (the descriptor stays open across exec), so it is released only when the
// last of them has exited, however they end. The holder writes its pid into
// the file for the message a second run gets.
#pragma once

#include <filesystem>

namespace mixlab {

class RunLock {
 public:
  // Throws, naming the folder and the pid holding it, when another process holds the lock.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace mixlab
