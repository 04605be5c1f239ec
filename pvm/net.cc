#include "pvm/net.h"

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
#include "pvm/cow.h"

namespace vu::pvm {

// ---- sockets with a path -------------------------------------------------------------------
Answer do_sockaddr(const Config& cfg, Call& c) {
  const bool is_bind = c.nr == SYS_bind;
  sockaddr_un sun{};
  size_t len = c.a[2];
  if (len <= offsetof(sockaddr_un, sun_path) || len > sizeof sun) return Answer::cont();
  if (!read_mem(c.tid, c.a[1], &sun, len)) return Answer::cont();  // the kernel says EFAULT
  if (sun.sun_family != AF_UNIX || sun.sun_path[0] == 0) return Answer::cont();
  std::string path(sun.sun_path, strnlen(sun.sun_path, len - offsetof(sockaddr_un, sun_path)));
  Start s;
  if (path[0] != '/' && start_of(cfg, c, AT_FDCWD, &s)) return Answer::cont();
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  Resolved r = cfg.map.resolve(s, path, !is_bind, who);
  if (r.err) return Answer::error(r.err);
  if (is_bind && r.exists) return Answer::error(EADDRINUSE);
  if (!is_bind && !r.exists) return Answer::error(ENOENT);
  if (is_bind && r.read_only()) return Answer::error(EROFS);
  if (!r.moved) return Answer::cont();
  // A name made in a copy-on-write directory: its parents in the layer first (pvm/cow.h).
  if (is_bind && r.cow)
    if (int e = r.cow->prepare_name(r.rel)) return Answer::error(e);
  // A host path longer than an address holds (a layer deep below the view's short path):
  // through the monitor's descriptor of its directory, /proc/self/fd/N/NAME.
  std::string where = r.host;
  UniqueFd dir;
  if (where.size() >= sizeof sun.sun_path) {
    const size_t k = where.rfind('/');
    dir.reset(::open(k == 0 ? "/" : where.substr(0, k).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return Answer::error(errno);
    where = "/proc/self/fd/" + std::to_string(dir.get()) + where.substr(k);
    if (where.size() >= sizeof sun.sun_path) return Answer::error(ENAMETOOLONG);
  }
  int err = 0;
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::error(err);
  sockaddr_un host{};
  host.sun_family = AF_UNIX;
  std::memcpy(host.sun_path, where.c_str(), where.size() + 1);
  auto hlen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + where.size() + 1);
  if (is_bind) {
    // The monitor's umask is 0 (workers share it): the socket's mode is set from the caller's.
    if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&host), hlen) < 0) return Answer::error(errno);
    (void)::fchmodat(AT_FDCWD, r.host.c_str(), 0777 & ~umask_of(c), 0);
    return Answer::value(0);
  }
  // On a worker thread: a connect to a full backlog waits here (an interrupted unix connect
  // leaves the socket unconnected, so it is made again).
  return Answer::result(wait_like_caller(
      c, [&] { return static_cast<long>(::connect(sock.get(), reinterpret_cast<sockaddr*>(&host), hlen)); }));
}

// getsockname/getpeername of a unix socket bound or connected to a path: the view's path
// (the socket lives at its host path). The kernel's contract: write min(size, length) bytes,
// set *addrlen to the full length.
Answer do_sockname(const Config& cfg, Call& c) {
  socklen_t size;
  if (!read_mem(c.tid, c.a[2], &size, sizeof size)) return Answer::error(EFAULT);
  if (static_cast<int>(size) < 0) return Answer::error(EINVAL);
  int err = 0;
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::cont();  // EBADF, ENOTSOCK… as the kernel says them
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  long rc = c.nr == SYS_getsockname ? ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&ss), &len)
                                    : ::getpeername(sock.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc < 0) return Answer::error(errno);
  auto* sun = reinterpret_cast<sockaddr_un*>(&ss);
  const size_t base = offsetof(sockaddr_un, sun_path);
  if (ss.ss_family == AF_UNIX && len > base + 1 && sun->sun_path[0] == '/') {
    std::string host(sun->sun_path, strnlen(sun->sun_path, len - base));
    std::string view = cfg.map.to_view(host);
    if (!view.empty() && view != host && view.size() < sizeof sun->sun_path) {
      std::memset(sun->sun_path, 0, sizeof sun->sun_path);
      std::memcpy(sun->sun_path, view.c_str(), view.size());
      len = static_cast<socklen_t>(base + view.size() + 1);
    }
  }
  size_t n = std::min<size_t>(size, len);
  if (n && !write_mem(c.tid, c.a[1], &ss, n)) return Answer::error(EFAULT);
  if (!write_mem(c.tid, c.a[2], &len, sizeof len)) return Answer::error(EFAULT);
  return Answer::value(0);
}

// A unix socket address naming a path of the view → the host's, in *out. False: leave the
// call to the kernel (not AF_UNIX, abstract, unnamed, or the lookup is the host's); *err set:
// answer with it.
bool map_unix_addr(const Config& cfg, Call& c, uint64_t addr, size_t len, sockaddr_un* out, socklen_t* out_len,
                   int* err) {
  *err = 0;
  sockaddr_un sun{};
  if (!addr || len <= offsetof(sockaddr_un, sun_path) || len > sizeof sun) return false;
  if (!read_mem(c.tid, addr, &sun, len)) return false;
  if (sun.sun_family != AF_UNIX || sun.sun_path[0] == 0) return false;
  std::string path(sun.sun_path, strnlen(sun.sun_path, len - offsetof(sockaddr_un, sun_path)));
  Start s;
  if (path[0] != '/' && start_of(cfg, c, AT_FDCWD, &s)) return false;
  Caller who;
  if (path.find("self") != std::string::npos) who = {c.tgid(), c.tid};
  Resolved r = cfg.map.resolve(s, path, true, who);
  if (r.err || !r.exists) return *err = r.err ? r.err : ENOENT, true;
  if (!r.moved) return false;
  if (r.host.size() >= sizeof out->sun_path) return *err = ENAMETOOLONG, true;
  *out = {};
  out->sun_family = AF_UNIX;
  std::memcpy(out->sun_path, r.host.c_str(), r.host.size() + 1);
  *out_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + r.host.size() + 1);
  return true;
}

// sendto(fd, buf, len, flags, addr, addrlen) and sendmsg(fd, msg, flags) to a unix socket path
// of the view: sent by the monitor on a duplicate of the socket, to the host path, with the
// caller's bytes (and descriptors: SCM_RIGHTS are taken from the caller). A send that waits
// for room waits here as the caller would (wait_like_caller).
Answer do_send(const Config& cfg, Call& c) {
  const bool msg = c.nr == SYS_sendmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::cont();  // EFAULT from the kernel
  sockaddr_un host;
  socklen_t hlen = 0;
  int err = 0;
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  const size_t alen = msg ? mh.msg_namelen : c.a[5];
  if (!map_unix_addr(cfg, c, addr, alen, &host, &hlen, &err)) return Answer::cont();
  if (err) return Answer::error(err);
  UniqueFd sock = take_fd(c, c.arg_int(0), &err);
  if (!sock) return Answer::error(err == ESRCH ? EBADF : err);
  // The data, at most 1 MiB (a larger datagram is EMSGSIZE for unix sockets anyway).
  std::vector<iovec> riov;
  if (msg) {
    if (mh.msg_iovlen > 1024) return Answer::error(EMSGSIZE);
    riov.resize(mh.msg_iovlen);
    if (!riov.empty() && !read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_iov), riov.data(), riov.size() * sizeof(iovec)))
      return Answer::error(EFAULT);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), std::min<uint64_t>(c.a[2], INT_MAX)});  // the kernel caps a length at INT_MAX
  }
  std::vector<char> data;
  if (int gerr = 0; !gather_iov(c.tid, riov, 1u << 20, &data, &gerr)) return Answer::error(gerr);
  std::vector<char> control;
  std::vector<UniqueFd> passed;
  if (msg && mh.msg_controllen) {
    if (mh.msg_controllen > 65536) return Answer::error(ENOBUFS);
    control.resize(mh.msg_controllen);
    if (!read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_control), control.data(), control.size()))
      return Answer::error(EFAULT);
    msghdr tmp{};
    tmp.msg_control = control.data();
    tmp.msg_controllen = control.size();
    for (cmsghdr* cm = CMSG_FIRSTHDR(&tmp); cm; cm = CMSG_NXTHDR(&tmp, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      int* fds = reinterpret_cast<int*>(CMSG_DATA(cm));
      size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        UniqueFd f = take_fd(c, fds[i], &err);
        if (!f) return Answer::error(EBADF);
        fds[i] = f.get();
        passed.push_back(std::move(f));
      }
    }
  }
  iovec one = {data.data(), data.size()};
  msghdr out{};
  out.msg_name = &host;
  out.msg_namelen = hlen;
  out.msg_iov = &one;
  out.msg_iovlen = 1;
  out.msg_control = control.empty() ? nullptr : control.data();
  out.msg_controllen = control.size();
  const int flags = c.arg_int(msg ? 2 : 3) | MSG_NOSIGNAL;  // EPIPE's SIGPIPE is the caller's (not sent)
  return Answer::result(wait_like_caller(c, [&] { return static_cast<long>(::sendmsg(sock.get(), &out, flags)); }));
}


}  // namespace vu::pvm
