#include "vdens/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

int send_fds(int sock, const int* fds, int n) {
  char cbuf[CMSG_SPACE(sizeof(int) * 16)];
  if (n <= 0 || n > 16) return EINVAL;
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
