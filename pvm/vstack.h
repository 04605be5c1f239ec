// pvm/vstack.h — VDE networks on the pvm backend (--net vde://…, switch://…, any VNL; `vu vdens`):
// the view's TCP/UDP sockets served by a user-mode TCP/IP stack plugged into the VDE network.
//
// Design (issue 15):
//   - The stack: lwIP 2.1 (Debian liblwip-dev), its raw API, with our own Ethernet netif over
//     libvdeplug (vde_open/vde_recv/vde_send: every VNL — vde://, switch://, ptp://, vxvde://…),
//     IPv4 and IPv6. Chosen over VirtualSquare's LWIPv6 (liblwipv6-dev, View-OS's umnet stack,
//     this file's first choice: VDE interface and socket API built in) by measurement: LWIPv6
//     alone is ~100 Mbit/s on a vde_switch and, through its socket API, took 2–3 pump threads a
//     socket (pvm ↔ pvm 0.30–0.34× ns ↔ ns); its shutdown sent no FIN, its getsockname was
//     wrong, a new connection after a large transfer was sometimes not accepted, glibc once
//     reported heap corruption at exit. lwIP's raw API driven by one event loop has none of
//     these. Measured (bench/net_vde.sh, SECS=5, nine runs on a 2-core VM shared with other
//     builds, load average 9–13, so ±50%): pvm → pvm 141–397 Mbit/s where ns → ns gave 170–351
//     in the same runs, 0.46–2.2× (median 1.46×; 7 of 9 runs ≥ 1.18×); ns → pvm 0.40–2.5×
//     (median 0.94×). lwIP's TCP_WND of 64 KiB (window scale 1, as Debian builds it) is not the
//     limit on one switch — pvm beats the kernel's TCP there; the frames' trips through
//     vde_switch and the pair are the cost.
//   - The stack runs in vu-vstack (pvm/vstack_main.cc), a dynamically linked helper started
//     by vu for the view: libvdeplug loads its VNL plugins with dlopen, which vu (a static
//     executable) cannot do. It is not in the view: no filter, not traced; it dies with vu (the
//     end of its channel). Two threads: lwIP's tcpip thread (timers) and one epoll loop over the
//     VDE connection, the channel and every pair; both touch lwIP and the sockets only under
//     lwIP's core lock (LOCK_TCPIP_CORE). No thread per socket.
//   - Data path: socket(AF_INET/AF_INET6, SOCK_STREAM/SOCK_DGRAM) in the view is answered with
//     one end of a socketpair (SOCK_STREAM for TCP, SOCK_SEQPACKET for UDP and ICMP: datagram
//     boundaries and an end-of-file when the view closes) handed in with
//     SECCOMP_IOCTL_NOTIF_ADDFD; the other end goes to vu-vstack, which reads it only as far as
//     tcp_sndbuf() has room and writes to it what lwIP received, acknowledging (tcp_recved) only
//     what the pair took: flow control both ways, as a kernel socket's buffers give.
//   - Resets (issue 15's trust gaps): the pair cannot carry an error, but af_unix's release
//     gives the peer sk_err = ECONNRESET when the closing end still has unread data. So a TCP
//     pair holds one byte the view "wrote" before it had the socket (the monitor's), which
//     vu-vstack never takes (reads with MSG_PEEK after it, SO_PEEK_OFF 1, then takes all but
//     the last byte read: that one is held next; the pair is watched edge-triggered, being
//     always readable). A reset from the peer (or a keepalive/retransmission timeout, or a
//     non-blocking connect's failure) closes vu-vstack's end with the byte unread: the view
//     reads what it had, then ECONNRESET once, then end-of-file; poll gives POLLERR|POLLHUP;
//     writes EPIPE. SO_ERROR asked first gives the real error (ETIMEDOUT…) once, as Linux's. The
//     other way: the view's close with data unread gives vu-vstack's end ECONNRESET the same
//     way, and SO_LINGER {1, 0} (setsockopt trapped, then done natively too) is told to
//     vu-vstack: either close is an RST (tcp_abort), as Linux's close.
//   - IP fragments are reassembled by vu-vstack before lwIP (pvm/vstack_frag.h): Debian's
//     lwIP keeps 10 fragments (~14 KB of UDP) by a constant of its build.
//   - Frames the switch cannot take at once wait in a bounded queue (512 frames) sent when the
//     VDE connection is writable; beyond it they are dropped and counted as write errors, as a
//     NIC's full queue: vde_output runs under lwIP's core lock and must not wait there (it
//     waited up to 1 s, stalling every socket of the view).
//   - lwIP's callbacks never abort their own pcb (lwIP uses it after the callback returns
//     ERR_OK): kill_sock asked to abort inside one defers it to the end of the loop's turn.
//     read/write/send/recv/poll/epoll/shutdown/close on the view's socket run natively; a
//     shutdown(SHUT_WR) sends the FIN, the view's close closes the connection after what it wrote.
//   - Trapped (the monitor's handlers in pvm/vstack.cc, each one request to vu-vstack over the
//     channel, pvm/vstack_proto.h): socket of those families; connect (a blocking one waits on
//     the worker; a non-blocking one answers EINPROGRESS at once, the bytes written meanwhile
//     wait in the pair); bind; listen; accept/accept4 (always: the listening pair carries one
//     byte per connection waiting, so poll/select/epoll on it work natively, and accept takes
//     the byte and the connection); getsockname/getpeername; sendto/sendmsg with an address
//     (the datagram is sent by the stack to that address); recvfrom/recvmsg asking for the
//     sender (the datagram is read from the pair here and its sender looked up in vu-vstack,
//     which keeps each datagram's sender under a hash of its bytes: datagrams the view read
//     without asking are passed over; SO_RCVTIMEO is kept as a deadline); setsockopt/getsockopt
//     other than SOL_SOCKET (TCP_NODELAY, IPV6_V6ONLY given to lwIP; others accepted and
//     ignored), and SO_TYPE/SO_DOMAIN/SO_PROTOCOL/SO_ERROR (the view's socket is an AF_UNIX
//     pair underneath: these say what the view asked for).
//   - ICMP echo: ping's datagram socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6) is a raw pcb of lwIP:
//     the view's echo requests go out with the socket's identifier and a checksum computed
//     here, the replies to that identifier come back without their IP header, with their TTL
//     (IP_TTL / IPV6_HOPLIMIT control message), as from Linux's ping sockets; lwIP answers
//     others' echo requests itself. SOCK_RAW is refused (EPERM): ping falls back to the former.
//   - Identity: a view socket is ours when its peer is a socket vu made (SO_PEERCRED pid = vu)
//     named with an autobind abstract name — that name is the socket's id in vu-vstack.
//   - Interfaces: lo and vde0 as on ns; the rtnetlink emulation of pvm/inet.cc keeps a per-view
//     model (addresses, link state, routes) that `ip addr add/del`, `ip link set up/down` and
//     `ip route add/del` change, and each change is given to the stack too (kAddr, kLink,
//     kRoute); vde0's MAC is the model's (kMac), so the frames carry the MAC `ip link` shows and
//     lwIP's fe80:: address is the model's. --ip/--gw fill the model at start; `vu vdens` leaves
//     it empty. --net-stats: vu-vstack counts vde0's frames and prints them at its end with
//     vu-net's words (vdens/port_stats.h); vu waits for it then (at most 4 s).
// Stack mode (runtime/pvm_stack_net.h: several --net, or --net-stats on slirp): vu-vstack has
// one netif per network, vde0, vde1, … (`--frames N`), each a frame link (a SOCK_SEQPACKET
// socketpair, one Ethernet frame per datagram) whose other end vu-net's pump pairs with the
// uplink (libslirp or libvdeplug) as it pairs an ns view's tap; the requests that change an
// interface name it (VsReq::id); the IPv4 default route's interface is lwIP's default netif.
// Why frame links to vu-net rather than libslirp linked here, and VDE uplinks through vu-net
// too: vu-net's pump already has slirp's loop, timers, forwards and their errors, the UDP
// forward readdressing and ACK coalescing, and one pump gives ns's --net-stats lines and
// uplink errors; vu-vstack keeps ~40 lines of link code. The cost is one socketpair hop per
// frame, for stack mode only; the larger one is lwIP's 1460-byte MSS through slirp, where
// ns's kernel sends 64 KiB segments over a 65520-byte MTU: view → host TCP in stack mode
// 808 Mbit/s beside ns's 2620 (0.31×) and the default host sockets' 9340, one run at load 7
// (`bench/net_pvm_stack.sh`, SECS=5 ROUNDS=3). The default network never takes this path.
// Lifetime: vu-vstack ends when its channel closes (vu ended or was killed: the kernel closes
// vu's end), once lwIP's connections have nothing left to send (unsent or unacknowledged data,
// a FIN not yet acknowledged), at most 3 s after vu — as a kernel socket's data still goes out
// after its process exits. vu spares it when the view ends (runtime/main.cc) and waits for it
// that long (3.5 s, then SIGKILL). A listener queues at most its backlog + 1 connections the
// view has not accepted (more are reset).
// Known differences from ns: the view's loopback in a VDE view is lwIP's (127.0.0.1 and the
// view's own addresses loop inside the stack); lwIP holds one IPv4 address per interface (a
// second `ip addr add` of IPv4 replaces the first in the stack; the model shows both); routes
// other than the IPv4 default gateway change nothing in the stack (one interface: everything
// leaves by vde0; an IPv6 default router comes only from router advertisements); a
// non-blocking connect that fails reads ECONNRESET where Linux reads the error itself
// (ECONNREFUSED, ETIMEDOUT: SO_ERROR gives it, as on Linux), and so does a connection that
// timed out (af_unix has only ECONNRESET to give); after a reset the first write gives EPIPE
// (and SIGPIPE) where Linux gives ECONNRESET once, then EPIPE (af_unix's send checks only the
// shutdown: nothing makes it fail with another error); data arriving after the view closed a
// connection resets it, as Linux; a vu-vstack that ends resets what is left; SO_LINGER with a
// time (l_linger > 0) does not make close wait (the view's close is of a socketpair end);
// SO_RCVBUF/SNDBUF are the pair's; TCP_INFO is a stub; SOCK_RAW is refused (an ns view, root
// in its namespace, may open one; ping falls back to its datagram socket); lwIP's TCP segments
// are at most TCP_MSS (1460, Debian's build) whatever the interface's MTU (slirp's 65520); a UDP
// datagram over IPv6 carries at most 65487 bytes (Linux 65527: lwIP's packets are at most 65535
// bytes with their header, pvm/vstack_frag.h); vu-vstack killed under a running view: vu says
// so, the view's connections read ECONNRESET (the kernel closed vu-vstack's ends with their held
// bytes), new sockets fail.
// A vu-vstack that does not answer (stopped, hung) within 10 s fails the view's call with
// ETIMEDOUT rather than hold the monitor's worker.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/error.h"

namespace vu::pvm {

struct Config;
class VStack;  // the channel to vu-vstack and the view's sockets (vstack.cc)

// Starts vu-vstack plugged into `vnl` (its path: $VU_VSTACK, else next to vu). The error names
// the VNL when the helper could not plug into it.
// With `stats`, it prints vde0's frame counters at its end (--net-stats) and vu waits for it.
Result<std::shared_ptr<VStack>> vstack_start(const std::string& vnl, bool stats = false);
// Stack mode (several networks, or --net-stats on slirp): vu-vstack with one interface per
// frame link (vde0, vde1, … in order), each a datagram socket whose other end is a port of
// vu-net's pump (vdens/pump.h). vu-net counts the frames (--net-stats).
Result<std::shared_ptr<VStack>> vstack_start_frames(const std::vector<int>& frames);
// Interface changes (the rtnetlink emulation's and --ip/--gw's): 0 or an errno.
// family AF_INET/AF_INET6; addr 4 or 16 bytes; link: 0 for vde0, 1 for vde1…
int vstack_addr(VStack& s, bool add, int family, const void* addr, int prefix, int link = 0);
int vstack_link(VStack& s, bool up, int link = 0);
// vde0's MAC: the frames carry the one vu's rtnetlink model shows.
int vstack_mac(VStack& s, const unsigned char mac[6], int link = 0);
int vstack_mtu(VStack& s, int mtu, int link = 0);
int vstack_route(VStack& s, bool add, int family, const void* dst, int prefix, const void* gw, int link = 0);
// The helper's pid: vu spares it when the view ends; it sends what lwIP still holds and ends
// by itself (at most ~3 s; sooner when its connections have closed).
pid_t vstack_pid(const VStack& s);
// The view's end: closes the channel and waits for the helper to send what lwIP holds and exit
// (bounded: 3.5 s, 4 s with --net-stats; then SIGKILL). vu calls it before it returns, not
// leaving it to ~VStack: the monitor's state (which holds the VStack) can outlive the Monitor in
// a detached ptrace worker, and vu's exit then orphaned a lingering vu-vstack. Stack mode's
// vu-net then sees its frame links close and ends too. Idempotent.
void vstack_finish(VStack& s);
// The helper was reaped elsewhere (it died while the view ran): vstack_finish waits for no pid.
void vstack_reaped(VStack& s);

}  // namespace vu::pvm
