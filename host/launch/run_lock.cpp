#include "launch/run_lock.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace mixlab {

RunLock::RunLock(const std::filesystem::path& run_dir) {
  auto file = run_dir / ".lock";
  // No O_CLOEXEC: the workers hold the lock too.
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd_ < 0)
    throw std::runtime_error(file.string() + ": cannot open the run folder's lock (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    if (err != EWOULDBLOCK) throw std::runtime_error(file.string() + ": cannot lock (" + std::strerror(err) + ")");
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw std::runtime_error(run_dir.string() + " is in use by another host run" +
                             (holder.empty() ? "" : " (pid " + holder + ")") +
                             "; wait for it to end, or stop it, before running on this folder");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  // The pid only serves messages: failing to write it does not matter.
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace mixlab
