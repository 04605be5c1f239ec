// pvm/host_at.h — a host path as the (directory descriptor, relative rest) pair the *at() system
// calls take, so that the length of the VIEW's path decides ENAMETOOLONG, never the host's.
//
//   HostAt h(r.host);                       // r: a Resolved (pvm/path_map.h)
//   if (h.err) return Answer::error(h.err);
//   ::mkdirat(h.fd(), h.rel(), mode);       // short path: (AT_FDCWD, r.host) as before
//   ::truncate(h.path().c_str(), len);      // no *at form: "/proc/self/fd/N/REST" when long
//
// Why: the monitor performs a trapped call on the host object the view's path resolves to, and
// that host path is longer than the view's (a scratch directory, a --cow layer's root, a FUSE
// mount's private directory; and a relative path from the caller's cwd becomes absolute). The
// kernel refuses a path argument of PATH_MAX bytes or more, so a call the view makes with a
// path of nearly PATH_MAX bytes (pjdfstest */03.t: mkdir -p of 255-byte components) failed on
// pvm with ENAMETOOLONG where the ns backend succeeds. The view's own limit is kept where it
// is checked: the path argument read from the caller (read_string: PATH_MAX with its NUL).
//
// A host path shorter than kShortPath goes to the kernel as it is (no extra call: the common
// case costs nothing). A longer one is opened in chunks: openat(O_PATH|O_DIRECTORY) of prefixes
// shorter than kShortPath each, every chunk relative to the descriptor of the one before, until
// the rest is shorter than kShortPath; the call then runs on (that descriptor, rest). The chunks
// follow exactly what the whole string would (the path map's walk already expanded the view's
// symlinks; a directory swapped for a symlink meanwhile is followed as the string call would
// follow it), so the result is the string call's, only without its length limit. Below a --cow
// directory the layers' own calls never take this way: they run beneath the layer's root
// descriptor with RESOLVE_BENEATH (pvm/cow.h) on the view-bounded relative path.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "base/unique_fd.h"

namespace vu::pvm {

// Shorter than PATH_MAX by room for "/proc/self/fd/NNNNNNNNNN/" (path()).
constexpr size_t kShortPath = 4096 - 64;

class HostAt {
 public:
  explicit HostAt(const std::string& host);
  int err = 0;  // opening a chunk failed (its errno: ENOENT, ENOTDIR, EACCES, ELOOP…)
  int fd() const { return dir_ ? dir_.get() : AT_FDCWD; }
  const char* rel() const { return rest_.c_str(); }
  bool chunked() const { return dir_.valid(); }
  // A whole path for the calls without an *at form (truncate, the xattr calls, statfs,
  // inotify_add_watch): the host path itself when short, else /proc/self/fd/N/REST (the
  // descriptor's magic link followed as a directory, the rest looked up from it).
  std::string path() const;

 private:
  UniqueFd dir_;
  std::string rest_;
};

// lstat/stat/readlink of a host path of any length (0 or -1 with errno, as the libc calls).
int host_lstat(const std::string& host, struct stat* st);
int host_stat(const std::string& host, struct stat* st);
ssize_t host_readlink(const std::string& host, char* buf, size_t size);
int host_open(const std::string& host, int flags, mode_t mode = 0);
// A host path for a call the traced caller makes itself (chdir, an O_PATH open: the monitor
// rewrites its argument, pvm/monitor.cc): `host` when the kernel takes it, else its rest below
// the caller's cwd (`cwd`: its host path) when that is short enough, else `host` (ENAMETOOLONG:
// the one place where the host's length still decides, for a target past PATH_MAX bytes from
// the cwd on the host).
std::string host_for_caller(const std::string& host, const std::string& cwd);
// The host path of the directory a magic link names (/proc/TID/cwd, /proc/TID/fd/N) when it is
// too long for readlink(2) (ENAMETOOLONG: a cwd or dirfd deep in a tree the view made): the
// names are found upwards (`..`, then the entry of the parent with the directory's st_dev and
// st_ino) until an ancestor's link reads. "" when that fails.
std::string long_dir_path(const std::string& link);

}  // namespace vu::pvm
