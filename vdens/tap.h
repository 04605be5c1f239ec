// vdens/tap.h — taps in the view's network namespace, configured from inside it.
//
// Called in the view's first process between clone() and execve(): every function here is
// async-signal-safe (ioctls on fixed structures, no allocation) and returns 0 or an errno.
//
//   int fd; if (int e = vu::vdens::open_tap("vde0", &fd)) fail(e);
//   vu::vdens::configure_if("vde0", 1500, &addr, 24, /*up=*/true);
//   vu::vdens::add_default_route(gw);
#pragma once

#include <netinet/in.h>

namespace vu::vdens {

// Creates tap `name` (IFF_TAP|IFF_NO_PI, IFF_VNET_HDR off) in the current network namespace.
int open_tap(const char* name, int* fd);
// Sets the MTU, the IPv4 address (addr may be null or 0.0.0.0: none), and brings it up.
int configure_if(const char* name, int mtu, const in_addr* addr, int prefix);
// Brings an interface up (lo).
int bring_up(const char* name);
// Adds the IPv4 default route through gw.
int add_default_route(in_addr gw);
// Makes `name`'s IPv6 configuration static: no router advertisements (no SLAAC address, no
// second default route) and no duplicate address detection (addresses usable at once). Call it
// before the interface goes up. A kernel without IPv6 is not an error.
int ipv6_static(const char* name);
// Adds IPv6 addr/prefix to `name`, and the IPv6 default route through gw when gw is not null.
int configure_ipv6(const char* name, const in6_addr& addr, int prefix, const in6_addr* gw);
// The taps of a view (at most 16) and its mount namespace, in one message.
inline constexpr int kMaxPassedFds = 17;
// Sends fds[0..n) (n <= kMaxPassedFds) in one SCM_RIGHTS message on a connected socket.
int send_fds(int sock, const int* fds, int n);

}  // namespace vu::vdens
