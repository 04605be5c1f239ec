#include "base/unique_fd.h"

#include <cerrno>

namespace vu::sys {

Result<UniqueFd> open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Error::sys("open", errno, path);
  return UniqueFd(fd);
}

Result<std::pair<UniqueFd, UniqueFd>> pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return Error::sys("pipe2", errno);
  return std::pair<UniqueFd, UniqueFd>(UniqueFd(p[0]), UniqueFd(p[1]));
}

Result<void> write_all(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("write", errno, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok{};
}

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd = VU_TRY(open(path, O_RDONLY));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("read", errno, path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace vu::sys
