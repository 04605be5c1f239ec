#include "vdens/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace vu::vdens {

namespace {

void set_name(struct ifreq* ifr, const char* name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
}

// Runs one SIOC* ioctl on a throw-away AF_INET socket.
int inet_ioctl(unsigned long req, void* arg) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  int err = ::ioctl(s, req, arg) < 0 ? errno : 0;
  ::close(s);
  return err;
}

void set_sin(struct sockaddr* sa, in_addr a) {
  auto* sin = reinterpret_cast<struct sockaddr_in*>(sa);
  std::memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_addr = a;
}

}  // namespace

int open_tap(const char* name, int* fd) {
  int f = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (f < 0) return errno;
  struct ifreq ifr;
  set_name(&ifr, name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(f, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    ::close(f);
    return e;
  }
  *fd = f;
  return 0;
}

int bring_up(const char* name) {
  struct ifreq ifr;
  set_name(&ifr, name);
  if (int e = inet_ioctl(SIOCGIFFLAGS, &ifr)) return e;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  return inet_ioctl(SIOCSIFFLAGS, &ifr);
}

int configure_if(const char* name, int mtu, const in_addr* addr, int prefix) {
  struct ifreq ifr;
  set_name(&ifr, name);
  ifr.ifr_mtu = mtu;
  if (int e = inet_ioctl(SIOCSIFMTU, &ifr)) return e;
  if (addr && addr->s_addr != 0) {
    set_name(&ifr, name);
    set_sin(&ifr.ifr_addr, *addr);
    if (int e = inet_ioctl(SIOCSIFADDR, &ifr)) return e;
    set_name(&ifr, name);
    in_addr mask;
    mask.s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0;
    set_sin(&ifr.ifr_netmask, mask);
    if (int e = inet_ioctl(SIOCSIFNETMASK, &ifr)) return e;
  }
  return bring_up(name);
}

int add_default_route(in_addr gw) {
  struct rtentry rt;
  std::memset(&rt, 0, sizeof rt);
  in_addr any{};
  set_sin(&rt.rt_dst, any);
  set_sin(&rt.rt_genmask, any);
  set_sin(&rt.rt_gateway, gw);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  return inet_ioctl(SIOCADDRT, &rt);
}

namespace {
// The kernel's struct in6_ifreq and struct in6_rtmsg (linux/ipv6.h, linux/ipv6_route.h; stable
// ABI), declared here because those headers clash with glibc's netinet/in.h.
struct In6Ifreq {
  in6_addr addr;
  uint32_t prefixlen;
  int ifindex;
};
struct In6Rtmsg {
  in6_addr dst, src, gateway;
  uint32_t type;
  uint16_t dst_len, src_len;
  uint32_t metric;
  unsigned long info;
  uint32_t flags;
  int ifindex;
};
}  // namespace

// Writes "0" to /proc/sys/net/ipv6/conf/NAME/KEY. ENOENT (no IPv6) is not an error.
static int ipv6_conf_off(const char* name, const char* key) {
  char path[96] = "/proc/sys/net/ipv6/conf/";
  if (std::strlen(name) >= IFNAMSIZ || std::strlen(key) > 32) return EINVAL;
  std::strcat(path, name);
  std::strcat(path, "/");
  std::strcat(path, key);
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : errno;
  bool wrote = ::write(fd, "0", 1) == 1;
  int e = errno;
  ::close(fd);
  return wrote ? 0 : e;
}

int ipv6_static(const char* name) {
  if (int e = ipv6_conf_off(name, "accept_ra")) return e;
  return ipv6_conf_off(name, "accept_dad");
}

int configure_ipv6(const char* name, const in6_addr& addr, int prefix, const in6_addr* gw) {
  if (::access("/proc/sys/net/ipv6", F_OK) < 0) return 0;  // no IPv6 in this kernel
  struct ifreq ifr;
  set_name(&ifr, name);
  if (int err = inet_ioctl(SIOCGIFINDEX, &ifr)) return err;
  int s = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno == EAFNOSUPPORT ? 0 : errno;
  In6Ifreq r{addr, static_cast<uint32_t>(prefix), ifr.ifr_ifindex};
  int err = ::ioctl(s, SIOCSIFADDR, &r) < 0 ? errno : 0;
  if (!err && gw) {
    In6Rtmsg rt;
    std::memset(&rt, 0, sizeof rt);
    rt.gateway = *gw;
    rt.metric = 1;
    rt.flags = RTF_UP | RTF_GATEWAY;
    rt.ifindex = ifr.ifr_ifindex;
    if (::ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) err = errno;
  }
  ::close(s);
  return err;
}

int send_fds(int sock, const int* fds, int n) {
  char cbuf[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  if (n <= 0 || n > kMaxPassedFds) return EINVAL;
  char byte = 'T';
  struct iovec iov = {&byte, 1};
  struct msghdr msg;
  std::memset(&msg, 0, sizeof msg);
  std::memset(cbuf, 0, sizeof cbuf);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<size_t>(n));
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<size_t>(n));
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<size_t>(n));
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? errno : 0;
}

}  // namespace vu::vdens
