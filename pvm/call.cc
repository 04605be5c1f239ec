#include "pvm/call.h"
#include "pvm/fuse_client.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <seccomp.h>
#include <dirent.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "pvm/accel_abi.h"

#include "pvm/compat.h"
#include "pvm/host_at.h"

namespace vu::pvm {

// ---------------------------------------------------------------------------------------------
// Reading and writing the caller's memory, and facts about it from /proc.


bool read_mem(pid_t pid, uint64_t addr, void* buf, size_t len) {
  iovec local = {buf, len};
  iovec remote = {reinterpret_cast<void*>(addr), len};
  return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool gather_iov(pid_t pid, const std::vector<iovec>& riov, size_t max, std::vector<char>* data, int* err) {
  size_t total = 0;
  for (const iovec& v : riov)
    if (v.iov_len > static_cast<size_t>(SSIZE_MAX)) return *err = EINVAL, false;  // the kernel's check
  for (const iovec& v : riov) {
    if (v.iov_len > max - total) return *err = EMSGSIZE, false;
    total += v.iov_len;
  }
  data->resize(total);
  size_t off = 0;
  for (const iovec& v : riov) {
    if (v.iov_len && !read_mem(pid, reinterpret_cast<uint64_t>(v.iov_base), data->data() + off, v.iov_len))
      return *err = EFAULT, false;
    off += v.iov_len;
  }
  return true;
}

bool write_mem(pid_t pid, uint64_t addr, const void* buf, size_t len) {
  iovec local = {const_cast<void*>(buf), len};
  iovec remote = {reinterpret_cast<void*>(addr), len};
  return ::process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

// A NUL-terminated string of at most PATH_MAX bytes; reads page by page so that a string near
// the end of a mapping is not an error. Returns 0 or errno (EFAULT, ENAMETOOLONG).
int read_string(pid_t pid, uint64_t addr, std::string* out, size_t max) {
  out->clear();
  if (!addr) return EFAULT;
  char buf[4096];
  while (out->size() < max) {
    // Most paths are short: try 256 bytes first (never past the page, which may be the last).
    size_t chunk = 4096 - (addr & 4095);
    if (out->empty() && chunk > 256) chunk = 256;
    if (!read_mem(pid, addr, buf, chunk)) return EFAULT;
    if (const void* nul = std::memchr(buf, 0, chunk)) {
      out->append(buf, static_cast<size_t>(static_cast<const char*>(nul) - buf));
      return out->size() < max ? 0 : ENAMETOOLONG;
    }
    out->append(buf, chunk);
    addr += chunk;
  }
  return ENAMETOOLONG;
}

std::string read_link(const std::string& path) {
  char buf[8192];  // more than a page: the kernel's d_path never truncates into it
  ssize_t n = host_readlink(path, buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

std::string proc_path(pid_t tid, const char* what) { return "/proc/" + std::to_string(tid) + "/" + what; }
std::string fd_path(pid_t tid, int fd) { return "/proc/" + std::to_string(tid) + "/fd/" + std::to_string(fd); }
// The object a dirfd argument names: the descriptor's, or the cwd for AT_FDCWD.
std::string dirfd_path(pid_t tid, int dirfd) { return dirfd == AT_FDCWD ? proc_path(tid, "cwd") : fd_path(tid, dirfd); }

// AT_EMPTY_PATH with "": the call is about dirfd itself (one byte read, not a path).
bool names_dirfd(pid_t tid, uint64_t path, int flags) {
  char first;
  return (flags & AT_EMPTY_PATH) && read_mem(tid, path, &first, 1) && first == 0;
}

// A field of /proc/TID/status ("Tgid:", "Umask:"), or -1.
long status_field(pid_t tid, const char* key, int base) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[2048];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = std::strstr(buf, key);
  if (!p) return -1;
  return std::strtol(p + std::strlen(key), nullptr, base);
}




uid_t view_uid(const Config& c, uid_t u) { return u == c.uid ? (c.root ? c.shown_uid : c.uid) : kOverflowId; }
gid_t view_gid(const Config& c, gid_t g) { return g == c.gid ? (c.root ? c.shown_gid : c.gid) : kOverflowId; }

// A view id given to chown → the host id, or -1 with EINVAL for ids the view does not map.
bool host_uid(const Config& c, uint32_t v, uid_t* out) {
  if (v == static_cast<uint32_t>(-1)) return *out = static_cast<uid_t>(-1), true;
  if (v == (c.root ? c.shown_uid : c.uid)) return *out = c.uid, true;
  return false;
}
bool host_gid(const Config& c, uint32_t v, gid_t* out) {
  if (v == static_cast<uint32_t>(-1)) return *out = static_cast<gid_t>(-1), true;
  if (v == (c.root ? c.shown_gid : c.gid)) return *out = c.gid, true;
  return false;
}

// Where a relative path of this call starts: the dirfd's or the cwd's place, in both worlds.
int start_of(const Config& cfg, Call& c, int dirfd, Start* s) {
  s->host = read_link(dirfd_path(c.tid, dirfd));
  if (s->host.empty() && errno == ENAMETOOLONG) s->host = long_dir_path(dirfd_path(c.tid, dirfd));  // deep: pvm/host_at.h
  if (s->host.empty() || s->host[0] != '/') return dirfd == AT_FDCWD ? ENOENT : (s->host.empty() ? EBADF : ENOTDIR);
  constexpr std::string_view kDeleted = " (deleted)";
  if (s->host.ends_with(kDeleted)) {
    // A removed directory: lookups start from the object itself (the magic link), as the
    // kernel's do ("." still works in it; new names get ENOENT).
    struct stat st;
    const std::string link = dirfd_path(c.tid, dirfd) + "/";
    if (::stat(link.c_str(), &st) == 0 && st.st_nlink == 0) {
      std::string v = cfg.map.to_view(s->host.substr(0, s->host.size() - kDeleted.size()));
      s->view = v.empty() ? s->host : v;
      s->host = link;
      return 0;
    }
  }
  std::string v = cfg.map.to_view(s->host);
  s->view = v.empty() ? s->host : v;
  return 0;
}

// Reads the path argument and resolves it from dirfd. Returns errno of either step in r->err.
Resolved resolve_arg(const Config& cfg, Call& c, int dirfd, uint64_t addr, bool follow, std::string* raw) {
  Resolved r;
  std::string path;
  if (int e = read_string(c.tid, addr, &path)) {
    r.err = e;
    return r;
  }
  Start s;
  if (!path.empty() && path[0] != '/') {
    if (int e = start_of(cfg, c, dirfd, &s)) {
      r.err = e;
      return r;
    }
  }
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  r = cfg.map.resolve(s, path, follow, who);
  if (r.long_name && !cfg.fuse_trees.empty()) fuse_long_name(cfg, c, &r);  // the program's limit (pvm/fuse_client.h)
  if (raw) *raw = std::move(path);
  return r;
}

mode_t umask_of(Call& c) {
  long m = status_field(c.tid, "Umask:", 8);
  return m < 0 ? 022 : static_cast<mode_t>(m);
}

// ---- calls that wait -----------------------------------------------------------------------
// Interrupts a worker's NOTIF_RECV or blocking call (no SA_RESTART: the call returns EINTR).
int start_masked_thread(pthread_t* t, void* (*fn)(void*), void* arg, size_t stack) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  const int rc = pthread_create(t, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  return rc;
}

int wake_signal() { return SIGRTMIN; }


// Whether the caller has a signal to handle: pending (its own or its process's), not blocked.
bool signal_pending(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[4096];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  buf[n] = 0;
  auto field = [&](const char* key) -> uint64_t {
    const char* p = std::strstr(buf, key);
    return p ? std::strtoull(p + std::strlen(key), nullptr, 16) : 0;
  };
  return ((field("SigPnd:") | field("ShdPnd:")) & ~field("SigBlk:") & ~field("SigIgn:")) != 0;
}

// The caller's descriptor `fd`, duplicated into the monitor (same open file description).
UniqueFd take_fd(Call& c, int fd, int* err) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, c.tgid(), 0)));
  if (!pidfd) return *err = errno, UniqueFd();
  UniqueFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!dup) *err = errno;
  return dup;
}

}  // namespace vu::pvm
