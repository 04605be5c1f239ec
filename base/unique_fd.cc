#include "base/unique_fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

Result<std::string> read_file(const std::string& path, size_t max) {
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
    if (out.size() + static_cast<size_t>(n) > max) return Error::sys("read", EFBIG, path);
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string exe_dir() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return {};
  std::string dir(exe, static_cast<size_t>(n));
  dir.resize(dir.rfind('/'));
  return dir;
}

std::string vu_library(const char* env, const char* name) {
  if (const char* e = std::getenv(env)) return e;
  std::string dir = exe_dir();
  if (dir.empty()) return {};
  for (std::string p : {dir + "/" + name, dir + "/../lib/vu/" + name})
    if (::access(p.c_str(), R_OK) == 0) return p;
  return {};
}

std::vector<pid_t> children_of(pid_t parent, pid_t above) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    if (std::atol(e->d_name) <= above) continue;
    char path[300], buf[512];
    std::snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses; the last ')' ends it.
    const char* close = std::strrchr(buf, ')');
    char state;
    long ppid;
    if (close && std::sscanf(close + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent)
      out.push_back(static_cast<pid_t>(std::atol(e->d_name)));
  }
  ::closedir(d);
  return out;
}

}  // namespace vu::sys
