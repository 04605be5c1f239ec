#include "pvm/host_at.h"

#include <dirent.h>
#include <unistd.h>

#include <vector>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace vu::pvm {

HostAt::HostAt(const std::string& host) {
  size_t start = 0;  // host[start..] is what is left, relative to fd() (absolute while 0)
  while (host.size() - start >= kShortPath) {
    // The furthest '/' that keeps this chunk short and leaves a name after it.
    size_t from = std::min(start + kShortPath - 1, host.size() - 2);
    size_t k = host.rfind('/', from);
    if (k == std::string::npos || k <= start) {  // a name of kShortPath bytes: never a real one
      err = ENAMETOOLONG;
      return;
    }
    const std::string chunk = host.substr(start, k - start);
    UniqueFd next(::openat(fd(), chunk.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!next) {
      err = errno;
      return;
    }
    dir_ = std::move(next);
    start = k + 1;
    while (start < host.size() - 1 && host[start] == '/') ++start;
  }
  rest_ = host.substr(start);
}

std::string HostAt::path() const {
  if (!dir_) return rest_;
  return "/proc/self/fd/" + std::to_string(dir_.get()) + "/" + rest_;
}

int host_lstat(const std::string& host, struct stat* st) {
  if (host.size() < kShortPath) return ::lstat(host.c_str(), st);
  HostAt h(host);
  if (h.err) return errno = h.err, -1;
  return ::fstatat(h.fd(), h.rel(), st, AT_SYMLINK_NOFOLLOW);
}

int host_stat(const std::string& host, struct stat* st) {
  if (host.size() < kShortPath) return ::stat(host.c_str(), st);
  HostAt h(host);
  if (h.err) return errno = h.err, -1;
  return ::fstatat(h.fd(), h.rel(), st, 0);
}

ssize_t host_readlink(const std::string& host, char* buf, size_t size) {
  if (host.size() < kShortPath) return ::readlink(host.c_str(), buf, size);
  HostAt h(host);
  if (h.err) return errno = h.err, -1;
  return ::readlinkat(h.fd(), h.rel(), buf, size);
}

int host_open(const std::string& host, int flags, mode_t mode) {
  if (host.size() < kShortPath) return ::open(host.c_str(), flags, mode);
  HostAt h(host);
  if (h.err) return errno = h.err, -1;
  return ::openat(h.fd(), h.rel(), flags, mode);
}

std::string host_for_caller(const std::string& host, const std::string& cwd) {
  if (host.size() < 4096 || cwd.empty() || cwd[0] != '/') return host;
  const size_t n = cwd == "/" ? 0 : cwd.size();
  if (host.size() > n + 1 && host.compare(0, n, cwd) == 0 && host[n] == '/' && host.size() - n - 1 < 4096)
    return host.substr(n + 1);
  return host;
}

std::string long_dir_path(const std::string& link) {
  UniqueFd cur(::open(link.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return {};
  std::vector<std::string> names;  // innermost first
  for (int up = 0; up < 4096; ++up) {
    char buf[4096];
    const std::string self = "/proc/self/fd/" + std::to_string(cur.get());
    ssize_t n = ::readlink(self.c_str(), buf, sizeof buf);
    if (n >= 0 && static_cast<size_t>(n) < sizeof buf) {
      std::string path(buf, static_cast<size_t>(n));
      if (path.empty() || path[0] != '/') return {};
      for (auto it = names.rbegin(); it != names.rend(); ++it) path += (path == "/" ? "" : "/") + *it;
      return path;
    }
    if (n >= 0 || errno != ENAMETOOLONG) return {};
    struct stat st;
    if (::fstat(cur.get(), &st) < 0) return {};
    int pfd = ::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) return {};
    DIR* d = ::fdopendir(pfd);
    if (!d) {
      ::close(pfd);
      return {};
    }
    std::string name;
    while (struct dirent* e = ::readdir(d)) {
      struct stat est;
      if (e->d_ino == st.st_ino && ::fstatat(pfd, e->d_name, &est, AT_SYMLINK_NOFOLLOW) == 0 &&
          est.st_dev == st.st_dev && est.st_ino == st.st_ino && std::string_view(e->d_name) != "." &&
          std::string_view(e->d_name) != "..") {
        name = e->d_name;
        break;
      }
    }
    UniqueFd parent(::openat(pfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    ::closedir(d);
    if (name.empty() || !parent) return {};
    names.push_back(std::move(name));
    cur = std::move(parent);
  }
  return {};
}

}  // namespace vu::pvm
