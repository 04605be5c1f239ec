#include "pvm/identity.h"

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

namespace vu::pvm {

Answer do_getgroups(const Config& cfg, Call& c) {
  std::vector<gid_t> buf(65536);
  gid_t* groups = buf.data();
  int n = ::getgroups(65536, groups);
  if (n < 0) return Answer::error(errno);
  for (int i = 0; i < n; ++i) groups[i] = view_gid(cfg, groups[i]);
  int size = c.arg_int(0);
  if (size == 0) return Answer::value(n);
  if (size < n) return Answer::error(EINVAL);
  if (n && !write_mem(c.tid, c.a[1], groups, sizeof(gid_t) * static_cast<size_t>(n))) return Answer::error(EFAULT);
  return Answer::value(n);
}

// --root: ids are 0 (an image's User: Config::shown_uid/shown_gid); setting them to those (or
// leaving them, -1) is allowed, anything else is an id the view does not map.
Answer do_root_ids(const Config& cfg, Call& c) {
  const bool gid = c.nr == SYS_getgid || c.nr == SYS_getegid || c.nr == SYS_setfsgid || c.nr == SYS_getresgid ||
                   c.nr == SYS_setgid || c.nr == SYS_setregid || c.nr == SYS_setresgid;
  const uint32_t shown = gid ? cfg.shown_gid : cfg.shown_uid;
  switch (c.nr) {
    case SYS_getuid:
    case SYS_geteuid:
    case SYS_getgid:
    case SYS_getegid:
    case SYS_setfsuid:
    case SYS_setfsgid:
      return Answer::value(shown);
    case SYS_getresuid:
    case SYS_getresgid: {
      for (int i = 0; i < 3; ++i)
        if (!write_mem(c.tid, c.a[i], &shown, sizeof shown)) return Answer::error(EFAULT);
      return Answer::value(0);
    }
    default: {
      int n = c.nr == SYS_setuid || c.nr == SYS_setgid ? 1 : c.nr == SYS_setreuid || c.nr == SYS_setregid ? 2 : 3;
      for (int i = 0; i < n; ++i) {
        uint32_t v = static_cast<uint32_t>(c.a[i]);
        if (v != shown && !(v == static_cast<uint32_t>(-1) && c.nr != SYS_setuid && c.nr != SYS_setgid))
          return Answer::error(EINVAL);
      }
      return Answer::value(0);
    }
  }
}


}  // namespace vu::pvm
