#include "vdens/sock_diag.h"

#include <linux/if_tun.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/child.h"

namespace vu::vdens {

namespace {

struct JoinArgs {
  int userns;
  int netns;
  int sock = -1, stat = -1, stat6 = -1;
  int err = 0;
};

// vfork-style child with CLONE_FILES: what it opens is in vu-net's fd table.
int make_diag_socket(void* p) {
  auto* a = static_cast<JoinArgs*>(p);
  // EINVAL: the namespace's owner is vu-net's own user namespace (vu net attach); then the
  // network namespace alone (which needs CAP_SYS_ADMIN over it: EPERM otherwise).
  if (::setns(a->userns, CLONE_NEWUSER) < 0 && errno != EINVAL) {
    a->err = errno;
    ::_exit(1);
  }
  if (::setns(a->netns, CLONE_NEWNET) < 0) {
    a->err = errno;
    ::_exit(1);
  }
  a->sock = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (a->sock < 0) a->err = errno;
  // /proc/thread-self/net is this task's namespace, now the view's.
  a->stat = ::open("/proc/thread-self/net/sockstat", O_RDONLY | O_CLOEXEC);
  a->stat6 = ::open("/proc/thread-self/net/sockstat6", O_RDONLY | O_CLOEXEC);  // no IPv6: -1
  ::_exit(0);
}

// The number after "PREFIX inuse " in a sockstat file; -1 when unreadable.
int inuse(int fd, const char* prefix) {
  char buf[1024];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = std::strstr(buf, prefix);
  if (!p) return -1;
  return std::atoi(p + std::strlen(prefix));
}

}  // namespace

int tcp_sockets(const ViewNetns& ns) {
  if (!ns.sockstat) return -1;
  int v4 = inuse(ns.sockstat.get(), "\nTCP: inuse ");
  int v6 = ns.sockstat6 ? inuse(ns.sockstat6.get(), "TCP6: inuse ") : 0;
  return v4 < 0 || v6 < 0 ? -1 : v4 + v6;
}

Result<ViewNetns> open_view_netns(int tap) {
  UniqueFd netns(::ioctl(tap, TUNGETDEVNETNS));
  if (!netns) return Error::sys("ioctl(TUNGETDEVNETNS)", errno);
  UniqueFd userns(::ioctl(netns.get(), NS_GET_USERNS));
  if (!userns) return Error::sys("ioctl(NS_GET_USERNS)", errno);
  JoinArgs a{userns.get(), netns.get()};
  Child c = VU_TRY(Child::spawn(make_diag_socket, &a, CLONE_FILES));
  (void)c.wait();
  ViewNetns ns;
  ns.sockstat.reset(a.stat);
  ns.sockstat6.reset(a.stat6);
  if (a.sock < 0) return Error::sys("socket(NETLINK_SOCK_DIAG) in the view", a.err ? a.err : EINVAL);
  ns.diag.reset(a.sock);
  return ns;
}

Result<bool> tcp_in_flight(int diag) {
  constexpr uint32_t kAlways = 1u << TCP_FIN_WAIT1 | 1u << TCP_CLOSING | 1u << TCP_LAST_ACK;
  constexpr uint32_t kIfQueued = 1u << TCP_ESTABLISHED | 1u << TCP_CLOSE_WAIT;
  for (int family : {AF_INET, AF_INET6}) {
    struct {
      struct nlmsghdr nlh;
      struct inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = static_cast<uint8_t>(family);
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = kAlways | kIfQueued;
    if (::send(diag, &msg, sizeof msg, 0) < 0) return Error::sys("sock_diag: send", errno);
    bool found = false;
    alignas(struct nlmsghdr) char buf[16384];
    for (bool done = false; !done;) {
      ssize_t n = ::recv(diag, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::sys("sock_diag: recv", errno);
      }
      if (n == 0) break;
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(h));
          // No IPv6 in this kernel: nothing to ask about.
          if (family == AF_INET6 && e->error == -ENOENT) return found;
          return Error::sys("sock_diag", -e->error);
        }
        auto* m = static_cast<struct inet_diag_msg*>(NLMSG_DATA(h));
        if ((kAlways & (1u << m->idiag_state)) || m->idiag_wqueue > 0) found = true;
      }
    }
    if (found) return true;
  }
  return false;
}

}  // namespace vu::vdens
