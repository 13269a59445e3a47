#include "util/atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace mixlab {

void write_file_atomic(const std::filesystem::path& path, const std::string& contents,
                       const std::function<void()>& before_rename) {
  auto tmp = path;
  tmp += ".tmp." + std::to_string(getpid());
  auto fail = [&](const char* what) {
    std::string msg = path.string() + ": cannot " + what + " (" + std::strerror(errno) + ")";
    ::unlink(tmp.c_str());
    throw std::runtime_error(msg);
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create a temporary file");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("flush to disk");
  }
  if (::close(fd) != 0) fail("close");
  if (before_rename) before_rename();
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename the temporary file into place");
}

}  // namespace mixlab
