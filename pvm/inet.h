// pvm/inet.h — the network half of a pvm view: the slirp-like network (or none) of the ns
// backend, given without a network namespace and without a user-mode TCP/IP stack.
//
// Design (issue 15; measured in bench/net_pvm.sh):
//   - The view's TCP/UDP sockets are real host sockets. socket() is not trapped; read/write/
//     send/recv/splice/poll/epoll never leave the kernel, so the data path is native (a 1 GiB
//     transfer causes as many notifications as a 1-byte one, 94 with socat: bench/net_pvm.sh
//     prints both; view→host TCP 2.9× the ns backend's libslirp path, -p 2.9× slirp4netns,
//     start-up 0.3× ns, in one run on the 2-core VM). Only the
//     calls that carry an address are trapped, and the addresses translated between the view's
//     network (lo 127.0.0.1/8 + ::1, vde0 10.0.2.100/24 + fd00::100/64, gateway 10.0.2.2,
//     resolver 10.0.2.3) and the host's:
//       connect, bind, getsockname, getpeername — always (their argument is an address);
//       sendto and recvfrom — only with an address argument (the filter tests it; send/recv
//         and sendto/recvfrom(…, NULL, …) stay native);
//       sendmsg, recvmsg — always: seccomp cannot look inside struct msghdr. The monitor lets
//         them through (CONTINUE) unless msg_name is set on an IP socket, or the socket is an
//         rtnetlink one of the view. A program whose data path is sendmsg/recvmsg pays one
//         round trip per call (~14 us); read/write/send/recv pay nothing;
//       accept, accept4 — only with an address argument: accepted by the monitor (on a worker,
//         waiting as the caller would), the peer written in view terms, the socket handed over;
//       socket(AF_NETLINK, …) — only that family (argument test): the rtnetlink emulation.
//     Translation (view → host, for connect/sendto/bind):
//       the view's own addresses (127.0.0.0/8, 10.0.2.100, 0.0.0.0 to bind; ::1, fd00::100, ::;
//         but a datagram socket's bind of the wildcard to port 0, a client's, stays the host's
//         wildcard; a stream socket so bound and then connected out gets EINVAL — rare)
//         → a private host loopback address 127.X.Y.Z chosen per view (Linux routes all of 127/8
//         to lo): two views bind the same port without a clash, and the view's 127.0.0.1 is not
//         the host's. IPv6: the host has only ::1, so the view's ::1 is ::ffff:127.X.Y.Z (a
//         v4-mapped address on the same socket, shown back as ::1 on IPv6 sockets); an
//         IPV6_V6ONLY socket cannot use it and gets the host's ::1 (shared with the host);
//         a socket connecting or sending to the view's own address is bound to 127.X.Y.Z
//         first, so its peer sees it as the view's 127.0.0.1, not as the host;
//       10.0.2.2 (fd00::2) → the host's 127.0.0.1 (::1) with slirp:allow-host-loopback, else
//         ENETUNREACH as libslirp answers;
//       10.0.2.3:53 (fd00::3) → the host's first nameserver (/etc/resolv.conf);
//       other addresses of 10.0.2.0/24: EHOSTUNREACH (no host there; never sent to the LAN);
//       everything else: out through the host's own routes (the NAT is the host's socket);
//       --net none: only the view's loopback; anything else ENETUNREACH.
//     Host → view (getsockname, getpeername, recvfrom, recvmsg's msg_name): 127.X.Y.Z → the
//     view's 127.0.0.1 (or the address the socket was bound to in the view), other host
//     loopback addresses → 10.0.2.2, the nameserver → 10.0.2.3, the host's own address a
//     socket went out from → 10.0.2.100.
//   - -p HOST:VIEW[/udp]: vu binds HOST:port at start (the error, if taken, comes before the
//     command runs, as on ns) and holds it; when the view binds VIEW (on its any, 10.0.2.100 or
//     the IPv6 equivalents), its own socket is bound at HOST instead (the reservation is given
//     up just before). The view's listening socket *is* the host's: no copy, no proxy thread;
//     a forwarded connection's peer shows as 10.0.2.2, as libslirp shows it.
//   - rtnetlink: socket(AF_NETLINK, …, NETLINK_ROUTE) gets a NETLINK_USERSOCK socket (the only
//     netlink family unprivileged processes may send to each other on), connected to a server
//     socket of vu's thread that answers RTM_GETLINK/GETADDR/GETROUTE dumps with the view's
//     interfaces (pvm/nlmsg.h: libmnl's helpers; vu links statically and Debian has no
//     libmnl.a) and refuses changes with EPERM (what the ns view, with no
//     capabilities, gets). Sends to the kernel's address (nl_pid 0) are redirected to the
//     server, and recvmsg/recvfrom show the replies as from the kernel (nl_pid 0).
//   Why not a user-mode stack (libslirp, lwIP) between the view and the host: every byte would
//   cross it (two copies and a thread hop), which caps view→host TCP below the ns backend's
//   slirp path; host sockets carry the bytes at the kernel's speed. VDE networks (vde://,
//   switch://, vdens) do need a stack (Ethernet frames): pvm/vstack.h (kVde); for them the
//   rtnetlink server answers from a per-view model the view may change (ip addr/link/route).
//   The server answers only the view's rtnetlink sockets (their port ids, which the kernel
//   fills in on NETLINK_USERSOCK and no sender can forge); another local user's requests to
//   its address are dropped.
//   Known differences from ns: any local user's process that finds 127.X.Y.Z (random per view,
//   ~2^23 choices) can reach the view's loopback services — on ns nothing outside can; a
//   socket bound to the view's 127.0.0.1 also answers on 10.0.2.100 (one host address serves
//   both); a view's own conversation with 10.0.2.100 shows 127.0.0.1;
//   ports below net.ipv4.ip_unprivileged_port_start are the host's rule (EACCES), which a
//   --root ns view is exempt from; ICMP echo (ping) is answered for the view's own and
//   virtual addresses only (pvm/inet_echo.h, with its differences); `ip monitor` (multicast
//   groups) and `ip route get` are not answered; the ns view's changes with capabilities
//   (--root: ip addr add…) are refused with EPERM; the interface ioctls (SIOCGIFCONF,
//   SIOCGIFADDR… of ifconfig) and /proc/net/* are the host's (no tool of the tests uses them;
//   ip, getifaddrs and hostname -I use rtnetlink).
//
// Other network options on pvm (issue 15):
//   - ICMP echo: socket(…, SOCK_DGRAM, IPPROTO_ICMP[V6]) is trapped and given a UDP stand-in
//     whose echo requests the monitor answers as the ns view's network would (pvm/inet_echo.h);
//     a datagram socket connected to a virtual address with nothing behind it (ping's source
//     probe to 10.0.2.3) is connected to a sink, so the connect succeeds as on ns.
//   - --net join:NAME: not this module. vu setns()s into the namespace before the view is made
//     (CAP_SYS_ADMIN, e.g. from cado, as on ns) and the view runs in it with NetConfig::kHost:
//     its interfaces, routes, rtnetlink, abstract unix sockets and data path are the
//     namespace's, natively, nothing trapped. The view itself holds none of the capabilities vu
//     got from cado (runtime/pvm_backend.cc drops them: on ns the view's own user namespace
//     holds none over the host either).
//   - Several --net (slirp+VDE, VDE+VDE, slirp+slirp): not this module. A socket's stack is
//     chosen when it is made, before any route is known, and one process may use one socket
//     towards either network; host sockets belong to the host's one stack. Such views run in
//     *stack mode* (runtime/pvm_stack_net.h): every IP socket is vu-vstack's (kVde, `links`:
//     vde0, vde1, … as on ns) and the rtnetlink model below answers for every interface.
//     `--net none --net …` is a usage error on both backends (vdens/net_spec.cc).
//   - --net-stats on this network: stack mode too. ns counts the frames vu-net pumps between
//     the tap and libslirp; here there are no frames: the view's bytes go through host sockets
//     the monitor never sees after their set-up (that is what makes the data path native), so
//     a view that asks for the counts gets lwIP's frames through vu-net's slirp, counted by
//     vu-net as on ns — and pays the user-mode stack's speed for it (bench/net_pvm_stack.sh).
//     The default view (one slirp, no --net-stats) keeps this module's host sockets.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vu::pvm {

struct NetState;  // the rtnetlink server and per-socket facts (inet.cc)
struct EchoState; // ICMP echo stand-ins and the sink (pvm/inet_echo.h)
class VStack;     // a VDE view's TCP/IP stack (pvm/vstack.h)

struct NetConfig {
  // kVde: a VDE network (pvm/vstack.h): the view's IP sockets are served by vu-vstack; the
  // rtnetlink model below is the view's to change (ip addr/link/route).
  enum Kind { kHost, kNone, kSlirp, kVde } kind = kHost;
  std::shared_ptr<VStack> vstack;  // kVde
  bool configure = true;           // kVde: --ip/--gw given to vde0 and lo up (false: vdens)
  bool allow_host_loopback = false;
  in_addr addr{}, gateway{}, dns{}, bcast{};  // 10.0.2.100, .2, .3, .255
  int prefix = 24;
  in6_addr addr6{}, gateway6{}, dns6{};        // fd00::100, ::2, ::3
  int mtu = 65520;
  unsigned char mac[6]{};
  // kVde in stack mode (pvm/vstack.h: several --net, or --net-stats on slirp): the stack's
  // interfaces vde0, vde1, … as the ns backend configures its taps (empty: one, vde0, from the
  // fields above). net_setup() gives each a MAC.
  struct Link {
    bool slirp = false;  // a slirp network's: the first one also gets fd00::100/64, default via fd00::2
    in_addr addr{};      // --ip (0: none)
    int prefix = 0;
    int mtu = 1500;
    unsigned char mac[6]{};
  };
  std::vector<Link> links;
  in_addr priv{};                  // 127.X.Y.Z: the view's loopback on the host
  bool have_host_dns = false;
  in_addr host_dns{};              // the host's nameserver behind 10.0.2.3
  struct Forward {
    bool udp = false;
    bool v6 = false;
    in_addr host_addr{};
    in6_addr host_addr6{};
    int host_port = 0, view_port = 0;
    int reserved = -1;  // vu's socket holding HOST:port until the view binds (NetState owns it)
  };
  std::vector<Forward> forwards;
  std::shared_ptr<NetState> state;  // made by net_setup()
  std::shared_ptr<EchoState> echo;  // made by net_setup() (slirp, none)
};

// Fills the view's addresses (slirp's), a random private loopback address and MAC, the host's
// nameserver, and reserves the forwarded ports. Returns "" or what went wrong (a port taken:
// *failed is its index in forwards).
std::string net_setup(NetConfig& net, int* failed = nullptr);

// Translation, for the handlers and the unit tests. `type` is SOCK_STREAM or SOCK_DGRAM.
enum class Route { kNative, kMapped, kError };
struct Mapping {
  Route route = Route::kNative;
  int err = 0;
  sockaddr_in6 host{};  // AF_INET in a sockaddr_in6's room, or AF_INET6
  unsigned len = 0;
  bool own = false;  // the destination is the view itself (bind the source to priv first)
};
// A destination of connect/sendto, as the view gave it; `type` (SOCK_STREAM, SOCK_DGRAM; 0:
// unknown) finds the view's own forwarded ports, whose sockets are bound at the host address.
Mapping map_dest(const NetConfig& net, const void* addr, unsigned len, int family, bool v6only = false,
                 int type = 0);
// A local address of bind.
Mapping map_bind(const NetConfig& net, const void* addr, unsigned len, int family, int type,
                 bool v6only = false);
// A host address back into the view's terms: `peer` (an address the socket talks to) or the
// socket's own address; `v6only`: the socket is IPV6_V6ONLY (its ::1 is the host's).
void map_back(const NetConfig& net, void* addr, unsigned* len, bool local, bool v6only = false);
// A socket's inode (how the monitor's tables know a socket whatever its fd number); 0 on error.
uint64_t inode_of(int fd);

}  // namespace vu::pvm
