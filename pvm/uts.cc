#include "pvm/uts.h"

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

// ---- identity and hostname -----------------------------------------------------------------
Answer do_uname(const Config& cfg, Call& c) {
  if (!cfg.hostname) return Answer::cont();
  utsname u;
  ::uname(&u);
  std::snprintf(u.nodename, sizeof u.nodename, "%s", cfg.hostname->c_str());
  if (!write_mem(c.tid, c.a[0], &u, sizeof u)) return Answer::error(EFAULT);
  return Answer::value(0);
}

Answer do_sethostname(Config& cfg, Call& c) {
  if (!cfg.root || cfg.shown_uid != 0) return Answer::error(EPERM);
  if (c.a[1] > 64) return Answer::error(EINVAL);
  std::string name(c.a[1], '\0');
  if (c.a[1] && !read_mem(c.tid, c.a[0], name.data(), name.size())) return Answer::error(EFAULT);
  cfg.hostname = name;
  return Answer::value(0);
}


}  // namespace vu::pvm
