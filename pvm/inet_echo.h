// pvm/inet_echo.h — ICMP echo (ping) on a pvm view's slirp-like network and --net none, and
// the datagram sockets connected to a virtual address nothing on the host stands for.
//
// Why a stand-in. A view's ping makes socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) (iputils,
// busybox: the unprivileged ICMP datagram socket; a pvm view never has CAP_NET_RAW, as
// no_new_privs ignores ping's file capability). The host's own ICMP datagram sockets are closed
// to most users (net.ipv4.ping_group_range "1 0", the kernel's default, which vu never changes)
// and, where open, could not give the view's answers (10.0.2.2 is libslirp's, the view's
// 127.0.0.1 is a private 127.X.Y.Z); where open they carry the view's pings to the world
// (below). So the socket the view gets (ADDFD) is a stand-in: a UDP socket of the same family
// bound to the view's private loopback address (IPv6: the host's ::1).
// Every option ping sets on it (IP_RECVERR, IP_RECVTTL, IPV6_RECVHOPLIMIT, SO_TIMESTAMP,
// SO_RCVBUF…) is an IP-level option the UDP socket has, so none of them traps.
//
// Answers, as the ns view's network gives them (libslirp's ip_icmp.c / ip6_icmp.c):
//   - the view's own addresses (127.0.0.0/8, 0.0.0.0, 10.0.2.100, ::1, fd00::100): the view's
//     kernel answers, TTL/hop limit 64;
//   - 10.0.2.2, 10.0.2.3 (fd00::2, fd00::3): libslirp's icmp_reflect, TTL/hop limit 255, whatever
//     allow-host-loopback says;
//   - anything else: as libslirp, through a host ICMP datagram socket when ping_group_range
//     lets vu's user have one (one per stand-in, kept by the monitor; a relay thread passes its
//     answers to the stand-in through the reflector of the address that answered, TTL 255 as
//     libslirp's icmp_reflect), else taken and not answered (sendto returns its length):
//     libslirp's fallback then is a UDP datagram to port 7 that practically never gets an
//     answer, so ping reports the loss on both backends;
//   - --net none: only the view's loopback; anything else ENETUNREACH (no route, as on ns).
// An answer is a datagram sent to the stand-in by a "reflector": a UDP socket of the monitor's
// bound next to it (127.X.Y.Z or ::1), one per answered address, its port naming that address
// and its IP_TTL/IPV6_UNICAST_HOPS the TTL to show. The view's recvmsg/recvfrom with an address
// (trapped, pvm/inet.h) shows the answer as from the address pinged; read/recv/poll are native.
// The echo reply carries the stand-in's port as its identifier, as a ping socket's does.
//
// The sink. ping first finds its source address with a UDP socket connect()ed to the target
// (port 1025) and getsockname(). On ns that connect always succeeds (a route exists); on pvm a
// connect to a virtual address with no host counterpart (10.0.2.2 without allow-host-loopback,
// 10.0.2.3 on a port other than 53, 10.0.2.X; fd00::/64 likewise) would fail. A datagram
// socket's connect to such an address is made to the sink instead: a UDP socket of the
// monitor's on the private loopback address that is never read (what reaches it is dropped,
// where libslirp drops it or answers with an ICMP error); getpeername shows the view address.
//
// Known differences from ns: a request longer than the answer's UDP datagram can carry (IPv4:
// 65508 to 65515 bytes, ping -s 65500 to 65507; IPv6: 65528 to 65535, ping -6 -s 65520 to
// 65527) is taken but not answered (ns answers it);
// SO_PROTOCOL says IPPROTO_UDP; connect/bind on a stand-in are the
// UDP socket's (ping -I, a connected ping socket: not emulated); another local user who finds
// the stand-in's port can put datagrams in it (read natively they look like echo replies);
// a datagram socket connected to the sink never hears the ICMP error libslirp would send.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "pvm/call.h"
#include "pvm/inet.h"

namespace vu::pvm {

struct EchoState;  // the stand-ins, reflectors, sink and sink-connected sockets (inet_echo.cc)
std::shared_ptr<EchoState> make_echo_state(in_addr priv);  // priv: NetConfig::priv

// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) or (AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6) on a
// slirp or none network: *out is the stand-in. False: not such a call (the kernel's).
bool echo_socket(const NetConfig& n, Call& c, Answer* out);
// Whether the socket (its inode) is a stand-in.
bool echo_is(const NetConfig& n, uint64_t ino);
// An echo request the view sends on stand-in `fd` (inode `ino`, of `family`) to `dest` (view terms).
Answer echo_send(const NetConfig& n, int fd, uint64_t ino, int family, const sockaddr_storage& dest, unsigned len,
                 const std::vector<char>& data);
// The sender of a datagram a stand-in received (host terms in, view terms out: the address
// pinged, port 0). False: not a reflector's (left as it was).
bool echo_from(const NetConfig& n, sockaddr_storage* from, socklen_t* len);

// A datagram socket's connect to `dest` (view terms) that map_dest refuses: to the sink when the
// address is one of the slirp network's virtual ones. Returns -1 (not for the sink: answer the
// refusal), or 0 / an errno of the connect.
int echo_sink_connect(const NetConfig& n, int fd, int family, bool v6only, uint64_t ino, const sockaddr_storage& dest,
                      unsigned len);
// The view's peer of a socket connected to the sink (getpeername). False: not one.
bool echo_peer(const NetConfig& n, uint64_t ino, sockaddr_storage* out, socklen_t* len);
// The socket connects elsewhere (or to the sink again): its recorded peer is forgotten.
void echo_forget(const NetConfig& n, uint64_t ino);

}  // namespace vu::pvm
