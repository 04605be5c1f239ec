// pvm/vstack_main.cc — vu-vstack: the user-mode TCP/IP stack (lwIP 2.1) of one pvm view on a
// VDE network. Started by vu (pvm/vstack.cc) as `vu-vstack [--stats] VNL` with the channel on
// fd 3; ends when the channel closes (vu gone). Dynamically linked: libvdeplug loads its VNL
// plugins with dlopen, which a static vu cannot do. The design is in pvm/vstack.h; the messages
// in pvm/vstack_proto.h.
//
// Two threads: lwIP's tcpip thread (its timers: retransmissions, delayed ACKs, ARP/ND ageing)
// and this one, an epoll loop over the VDE connection, the channel to vu and the stack's end
// of every view socket's pair. Both touch lwIP and the sockets below only under lwIP's core
// lock (LOCK_TCPIP_CORE), so the callbacks lwIP makes from either thread (tcp_recv, tcp_sent,
// tcp_err, accept, udp/raw recv) see one consistent state. The raw API (tcp_*, udp_*, raw_*)
// is used directly: no thread per socket, no copies but the two the pair needs.
//
// Flow control both ways: bytes are read from a view's pair only as far as tcp_sndbuf() has
// room (the rest waits in the pair: the view's writes block as on a full kernel socket); bytes
// from the network are written to the pair and acknowledged to lwIP (tcp_recved, which opens
// the window) only as far as the pair took them; the rest waits here (EPOLLOUT).
extern "C" {  // (lwipopts.h and libvdeplug.h declare C functions outside any extern "C")
#include <lwip/init.h>
#include <lwip/ip.h>
#include <lwip/ip6_addr.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/raw.h>
#include <lwip/tcp.h>
#include <lwip/tcpip.h>
#include <lwip/udp.h>
#include <lwip/etharp.h>
#include <lwip/ethip6.h>
#include <lwip/inet_chksum.h>
#include <lwip/prot/icmp.h>
#include <lwip/prot/icmp6.h>
#include <lwip/prot/ip4.h>
#include <lwip/ip4.h>
#include <lwip/ip6.h>
#include <netif/ethernet.h>
#include <lwip/priv/tcp_priv.h>
#include <libvdeplug.h>
}

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pvm/vstack_frag.h"
#include "pvm/vstack_proto.h"
#include "vdens/plug_children.h"
#include "vdens/port_stats.h"

namespace {

using namespace vu::pvm::vs;

bool g_debug = false;  // $VU_VSTACK_DEBUG: each request on stderr
int g_ep = -1;

// One interface of the stack: vde0, vde1, … in order. A VDE link (`vu-vstack VNL`: libvdeplug,
// here) or a frame link (`--frames N`: a datagram socket whose other end is a port of vu-net's
// pump, vdens/pump.h, which pairs it with a slirp instance or a VDE connection as it pairs a
// tap on ns).
struct Iface {
  netif nif{};
  VDECONN* vde = nullptr;
  int fd = -1;  // a frame link's socket
  vu::vdens::PortStats stats;  // (--stats: a VDE link's frames; vu-net counts a frame link's)
  uint8_t mac[6]{};
  std::deque<std::string> txq;  // frames the link could not take at once (vde_output)
  size_t txq_bytes = 0;
  bool tx_wait = false;         // EPOLLOUT asked on the link
  int data_fd() const { return vde ? vde_datafd(vde) : fd; }
};
std::vector<Iface*> g_ifs;  // never freed (lwIP keeps pointers to the netifs)
Iface* iface_of(netif* n) { return static_cast<Iface*>(n->state); }
netif* first_if() { return &g_ifs[0]->nif; }

struct Datagram {
  uint64_t hash;
  sockaddr_storage from;
  socklen_t len;
  int ttl = 0;  // ICMP: the reply's TTL / hop limit (ping prints it)
};

enum Kind { kTcp, kUdp, kIcmp };

// A view socket (or a connection accepted and not yet taken by the view: fd -1).
struct Sock {
  uint64_t id = 0;
  int fd = -1;  // the stack's end of the view socket's pair (non-blocking)
  Kind kind = kTcp;
  int domain = AF_INET;
  tcp_pcb* tcp = nullptr;
  udp_pcb* udp = nullptr;
  raw_pcb* raw = nullptr;
  bool dead = false;
  // epoll
  bool in_ep = false;
  uint32_t ev = 0;
  bool hup = false;     // the view closed its end (or both ends are shut)
  bool rd_eof = false;  // the view's end-of-file read (its FIN sent)
  // TCP
  bool listening = false, connecting = false, connected = false, reset = false;
  bool v6only = false;
  int reply = -1;      // a connect's reply end, answered when lwIP knows
  bool nb_connect = false;
  pbuf* rx = nullptr;  // from the network, not yet taken by the pair
  bool rx_fin = false, fin_sent = false;
  // The view's side of a reset: the pair carries one byte the view wrote before it had the
  // socket (the monitor's, vstack_proto.h), never taken (SO_PEEK_OFF 1: reads start after it,
  // and each read leaves its last byte in its place). Closing this end with it unread is what
  // makes the view's next read ECONNRESET (af_unix's release sets the peer's sk_err when the
  // closing end has unread data). `closed`: this end closed so (a reset, a failed connect);
  // the Sock stays for the view's names and SO_ERROR until its id is reused (g_closed bounds them).
  bool closed = false;
  int error = 0;         // SO_ERROR: the connection's end (ECONNRESET, ETIMEDOUT, ECONNREFUSED…)
  bool linger0 = false;  // SO_LINGER {1, 0}: the view's close resets (an RST, unsent data dropped)
  bool view_reset = false;  // the view closed with data unread (its end's queue): an RST, as Linux
  bool abort_later = false; // an abort asked for inside one of lwIP's callbacks: done after it
  bool dirty = false;  // rx grew during a batch of frames: flushed after it
  std::string tx;      // read from the pair, not yet taken by tcp_write (ERR_MEM)
  std::deque<Sock*> pending;  // listener: accepted connections, one byte each in the pair
  size_t backlog = 1;         // listener: at most this many in `pending` (listen's backlog + 1, as Linux)
  // UDP / ICMP
  std::deque<Datagram> senders;
  uint16_t icmp_id = 0;  // ICMP: the echo identifier of the view's requests
  // names
  bool bound = false;
  sockaddr_storage local{}, peer{};
};

std::map<uint64_t, Sock*> g_socks;
std::vector<Sock*> g_dead;  // freed at the end of the loop's turn (their events may be pending)
// While a batch of frames goes through lwIP, what arrives for the view is queued and written to
// the pairs after the batch: one write per socket and batch, not one per segment.
bool g_in_batch = false;
std::vector<Sock*> g_dirty;
char g_tag_channel;
std::vector<char> g_buf(65536);
std::vector<char> g_scratch(65536);  // what pump_tx dequeues (already sent from g_buf)
std::deque<uint64_t> g_closed;       // ids of Socks whose end was closed (bounded: kMaxClosed)
constexpr size_t kMaxClosed = 4096;
// lwIP's callbacks for a pcb must not abort that pcb (unless they return ERR_ABRT, which ours
// do not): lwIP goes on using it after the callback. Inside one (g_in_cb), kill_sock(s, true)
// marks the Sock and the abort is done at the end of the loop's turn (g_later); the tcpip
// thread's callbacks wake the loop with g_wake.
int g_in_cb = 0;
std::vector<Sock*> g_later;
int g_wake = -1;
struct InCallback {
  InCallback() { ++g_in_cb; }
  ~InCallback() { --g_in_cb; }
};
vu::pvm::Reassembler g_frag;  // IPv4/IPv6 fragments, ahead of lwIP (pvm/vstack_frag.h)

// ---- addresses ------------------------------------------------------------------------------

bool to_ip(const sockaddr_storage& a, ip_addr_t* ip, uint16_t* port) {
  *ip = {};
  if (a.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V4);
    ip_2_ip4(ip)->addr = s->sin_addr.s_addr;
    *port = ntohs(s->sin_port);
    return true;
  }
  if (a.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    *port = ntohs(s->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V4);
      std::memcpy(&ip_2_ip4(ip)->addr, s->sin6_addr.s6_addr + 12, 4);
      return true;
    }
    IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V6);
    std::memcpy(ip_2_ip6(ip)->addr, &s->sin6_addr, 16);
    ip6_addr_clear_zone(ip_2_ip6(ip));
    ip6_addr_assign_zone(ip_2_ip6(ip), IP6_UNICAST, first_if());
    return true;
  }
  return false;
}

// lwIP's address as a sockaddr: IPv4 as AF_INET (the monitor maps it for an IPv6 socket); a
// wildcard of either type in the socket's family.
sockaddr_storage from_ip(const ip_addr_t* ip, uint16_t port, int domain) {
  sockaddr_storage out{};
  if (IP_IS_V4(ip) && !(domain == AF_INET6 && ip_addr_isany(ip))) {
    auto* s = reinterpret_cast<sockaddr_in*>(&out);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr.s_addr = ip_2_ip4(ip)->addr;
  } else if (domain == AF_INET && ip_addr_isany(ip)) {
    auto* s = reinterpret_cast<sockaddr_in*>(&out);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&out);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    if (IP_IS_V6(ip)) std::memcpy(&s->sin6_addr, ip_2_ip6(ip)->addr, 16);
  }
  return out;
}

socklen_t len_of(const sockaddr_storage& a) {
  return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

int errno_of(err_t e, bool connecting = false) {
  switch (e) {
    case ERR_OK: return 0;
    case ERR_MEM: case ERR_BUF: return ENOBUFS;
    case ERR_TIMEOUT: return ETIMEDOUT;
    case ERR_RTE: return ENETUNREACH;
    case ERR_INPROGRESS: return EINPROGRESS;
    case ERR_VAL: case ERR_ARG: return EINVAL;
    case ERR_WOULDBLOCK: return EWOULDBLOCK;
    case ERR_USE: return EADDRINUSE;
    case ERR_ALREADY: return EALREADY;
    case ERR_ISCONN: return EISCONN;
    case ERR_CONN: return ENOTCONN;
    case ERR_IF: return ENETDOWN;
    case ERR_ABRT: return connecting ? ETIMEDOUT : ECONNABORTED;
    case ERR_RST: return connecting ? ECONNREFUSED : ECONNRESET;
    case ERR_CLSD: return ENOTCONN;
    default: return EIO;
  }
}

void names_from_pcb(Sock* s) {
  if (s->tcp) {
    s->local = from_ip(&s->tcp->local_ip, s->tcp->local_port, s->domain);
    if (s->tcp->local_port) s->bound = true;
    if (s->connected) s->peer = from_ip(&s->tcp->remote_ip, s->tcp->remote_port, s->domain);
  } else if (s->udp) {
    s->local = from_ip(&s->udp->local_ip, s->udp->local_port, s->domain);
    if (s->udp->local_port) s->bound = true;
    if (s->connected) s->peer = from_ip(&s->udp->remote_ip, s->udp->remote_port, s->domain);
  }
}

// ---- the VDE interface ----------------------------------------------------------------------

// Frames the link could not take at once (a switch's queue full, vu-net's pump behind): kept in
// order and sent when the link is writable (EPOLLOUT, the loop's turn), at most kTxQueue of them
// and kTxBytes — beyond, dropped and counted (write errors), as a NIC's full queue drops: this
// runs under lwIP's core lock, and waiting here for room (it did, up to 1 s) stalled every socket
// of the view.
constexpr size_t kTxQueue = 512;  // ~750 KB of full Ethernet frames; Linux's txqueuelen is 1000
constexpr size_t kTxBytes = 4u << 20;  // a frame link's frames reach 64 KiB (slirp's MTU)

void tx_wait(Iface* f, bool on) {
  if (f->tx_wait == on) return;
  f->tx_wait = on;
  epoll_event e{};
  e.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  e.data.ptr = f;
  ::epoll_ctl(g_ep, EPOLL_CTL_MOD, f->data_fd(), &e);
}

bool send_frame(Iface* f, const void* frame, size_t len) {  // false: the link's queue is full
  for (;;) {
    const ssize_t sent = f->vde ? vde_send(f->vde, frame, len, 0) : ::send(f->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) {
      f->stats.from_view_frames++;
      f->stats.from_view_bytes += len;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    f->stats.write_errors++;  // (not a full queue: the frame is lost, as a NIC's send error)
    return true;
  }
}

// What waited, in order, as far as the link takes it (the loop, on EPOLLOUT).
void flush_txq(Iface* f) {
  while (!f->txq.empty() && send_frame(f, f->txq.front().data(), f->txq.front().size())) {
    f->txq_bytes -= f->txq.front().size();
    f->txq.pop_front();
  }
  tx_wait(f, !f->txq.empty());
}

err_t vde_output(netif* nif, pbuf* p) {
  Iface* f = iface_of(nif);
  const void* frame = p->payload;
  static std::vector<char> flat(65536 + 64);
  if (p->next) {
    if (p->tot_len > flat.size()) return ERR_BUF;
    pbuf_copy_partial(p, flat.data(), p->tot_len, 0);
    frame = flat.data();
  }
  if (f->txq.empty() && send_frame(f, frame, p->tot_len)) return ERR_OK;
  if (f->txq.size() >= kTxQueue || f->txq_bytes + p->tot_len > kTxBytes) {
    f->stats.write_errors++;
    return ERR_OK;  // dropped (TCP retransmits; UDP is lost, as from a full NIC queue)
  }
  f->txq.emplace_back(static_cast<const char*>(frame), p->tot_len);
  f->txq_bytes += p->tot_len;
  tx_wait(f, true);
  return ERR_OK;
}

err_t vde_netif_init(netif* n) {
  n->name[0] = 'v';
  n->name[1] = 'd';
  n->output = etharp_output;
  n->output_ip6 = ethip6_output;
  n->linkoutput = vde_output;
  n->mtu = 1500;  // (a frame link: vu sets its interface's MTU, kMtu)
  n->hwaddr_len = 6;
  std::memcpy(n->hwaddr, iface_of(n)->mac, 6);
  n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP | NETIF_FLAG_MLD6;
  return ERR_OK;
}

void flush_rx(Sock* s);
void update_tcp(Sock* s);
void flush_batch() {
  for (Sock* s : g_dirty) {
    s->dirty = false;
    if (s->dead) continue;
    flush_rx(s);
    update_tcp(s);
  }
  g_dirty.clear();
}

// A pbuf of n bytes (at most 65535), room for `layer`'s headers before: one piece of PBUF_RAM
// up to 16 KiB, else a chain of them — one piece is at most ~65 KB with its headers' room
// (lwIP's sizes are 16 bits), and Debian's PBUF_POOL pbufs are unusable (a chain of them
// crashes pbuf_take).
pbuf* big_pbuf(pbuf_layer layer, size_t n) {
  pbuf* head = nullptr;
  for (size_t left = n;;) {
    const size_t k = std::min<size_t>(left, 16384);
    pbuf* q = pbuf_alloc(head ? PBUF_RAW : layer, static_cast<uint16_t>(k), PBUF_RAM);
    if (!q) {
      if (head) pbuf_free(head);
      return nullptr;
    }
    if (head) pbuf_cat(head, q);
    else head = q;
    left -= k;
    if (!left) return head;
  }
}

// IPv4/IPv6 fragments addressed to this interface's MAC (or a group) go to the reassembler
// (pvm/vstack_frag.h): lwIP's own keeps at most 10 fragments, fixed at Debian's build. A whole
// datagram goes to lwIP's IP layer as a pbuf chain (up to 65535 bytes: more than an Ethernet
// frame's pbuf could hold). true: the frame was taken (p freed).
bool reassemble(pbuf* p, size_t n, netif* nif) {
  const auto* f = static_cast<const uint8_t*>(p->payload);
  const unsigned type = f[12] << 8 | f[13];
  if ((type != 0x0800 && type != 0x86dd) || n < 34) return false;
  if (!(f[0] & 1) && std::memcmp(f, nif->hwaddr, 6) != 0) return false;  // (another's: lwIP drops it)
  // A quick look before the reassembler's: most frames are not fragments.
  if (type == 0x0800 && !(f[20] & 0x3f) && !f[21]) return false;
  if (type == 0x86dd && f[20] != 44 && f[20] != 0 && f[20] != 43 && f[20] != 60) return false;
  std::vector<uint8_t> whole;
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  const auto r = g_frag.input(f + 14, n - 14, now, &whole);
  if (r == vu::pvm::Reassembler::kNotFragment) return false;
  pbuf_free(p);
  if (r != vu::pvm::Reassembler::kWhole) return true;
  pbuf* q = big_pbuf(PBUF_RAW, whole.size());
  if (!q) return true;
  pbuf_take(q, whole.data(), static_cast<uint16_t>(whole.size()));
  if (type == 0x0800) ip4_input(q, nif);  // (both free the pbuf whatever they make of it)
  else ip6_input(q, nif);
  return true;
}

// Frames from the switch, a batch at a time.
void vde_input_batch(Iface* f);
void vde_input(Iface* f) {
  g_in_batch = true;
  vde_input_batch(f);
  g_in_batch = false;
  flush_batch();
}
// vde_recv is called only when the connection is readable: some plugins wait inside it
// whatever the flags (switch://: an epoll_wait with no timeout), and this runs under the core
// lock.
void vde_input_batch(Iface* f) {
  // A frame link carries frames of up to its MTU (slirp's: 65520) and 14 bytes of header: read
  // into one buffer, then copied into a pbuf of the frame's size (Debian's lwIP allocates with
  // malloc, and pbuf_realloc does not give the rest back: every segment a socket or the
  // out-of-order queue held kept 64 KiB).
  static std::vector<char> big(65535);
  const uint16_t room = f->vde ? 1536 : 65535;
  for (int i = 0; i < 64; ++i) {
    if (i > 0 && f->vde) {
      pollfd r{vde_datafd(f->vde), POLLIN, 0};
      if (::poll(&r, 1, 0) <= 0 || !(r.revents & POLLIN)) return;
    }
    pbuf* p = nullptr;
    ssize_t n;
    if (f->vde) {
      p = pbuf_alloc(PBUF_RAW, room, PBUF_RAM);
      if (!p) return;
      n = vde_recv(f->vde, p->payload, room, MSG_DONTWAIT);
    } else {
      n = ::recv(f->fd, big.data(), big.size(), MSG_DONTWAIT);
      if (n == 0) {  // vu-net is gone: the link is down for good
        ::epoll_ctl(g_ep, EPOLL_CTL_DEL, f->fd, nullptr);
        netif_set_link_down(&f->nif);  // (its routes no longer chosen: no frames sent into EPIPE)
        return;
      }
      if (n >= 14) {
        p = pbuf_alloc(PBUF_RAW, static_cast<uint16_t>(n), PBUF_RAM);
        if (!p) return;
        pbuf_take(p, big.data(), static_cast<uint16_t>(n));
      }
    }
    if (n <= 0) {  // (a plugin's own traffic, e.g. switch:// taking a new port, gives 0)
      if (p) pbuf_free(p);
      if (n < 0) return;
      continue;
    }
    if (n < 14) {
      f->stats.runts++;
      if (p) pbuf_free(p);
      continue;
    }
    pbuf_realloc(p, static_cast<uint16_t>(n));
    f->stats.to_view_frames++;
    f->stats.to_view_bytes += static_cast<uint64_t>(n);
    if (reassemble(p, static_cast<size_t>(n), &f->nif)) continue;
    if (f->nif.input(p, &f->nif) != ERR_OK) pbuf_free(p);
  }
}

// ---- sockets --------------------------------------------------------------------------------

void set_events(Sock* s, uint32_t ev) {
  if (s->fd < 0 || s->dead) return;
  epoll_event e{};
  // A TCP pair is always readable (its held byte, Sock::closed): edge-triggered, every read
  // goes on to EAGAIN or to lwIP's full buffer (on_sent reads on).
  e.events = ev | (s->kind == kTcp ? EPOLLET : 0u);
  e.data.ptr = s;
  if (!s->in_ep) {
    if (::epoll_ctl(g_ep, EPOLL_CTL_ADD, s->fd, &e) == 0) s->in_ep = true, s->ev = ev;
    else if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: epoll: %s\n", static_cast<unsigned long long>(s->id), std::strerror(errno));
  } else if (ev != s->ev) {
    ::epoll_ctl(g_ep, EPOLL_CTL_MOD, s->fd, &e);
    s->ev = ev;
  }
}
void unwatch(Sock* s) {
  if (s->in_ep) ::epoll_ctl(g_ep, EPOLL_CTL_DEL, s->fd, nullptr);
  s->in_ep = false;
  s->ev = 0;
}

void drop_rx(Sock* s) {
  if (!s->rx) return;
  if (s->tcp) {
    for (uint32_t left = s->rx->tot_len; left;) {
      uint16_t k = static_cast<uint16_t>(std::min<uint32_t>(left, 0xffff));
      tcp_recved(s->tcp, k);
      left -= k;
    }
  }
  pbuf_free(s->rx);
  s->rx = nullptr;
}

// A connection the view has closed: its FIN goes out after what lwIP holds, but data arriving
// after the close resets it (as Linux: the sender learns at once that nobody reads, rather
// than stream into a socket that drops what it gets).
err_t on_recv_closed(void* arg, tcp_pcb* pcb, pbuf* p, err_t err) {
  if (!p) return tcp_recv_null(arg, pcb, p, err);
  pbuf_free(p);
  tcp_abort(pcb);
  return ERR_ABRT;
}

void detach_tcp(tcp_pcb* pcb) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, on_recv_closed);
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
  tcp_poll(pcb, nullptr, 0);
}

void answer(int* rfd, long ret, int err) {
  if (*rfd < 0) return;
  VsRep r;
  r.ret = ret;
  r.err = err;
  (void)::send(*rfd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(*rfd);
  *rfd = -1;
}

// Ends a socket: its pcb closed (a connection's FIN after what lwIP still holds) or aborted, its
// pair closed. Freed at the end of the loop's turn.
void kill_sock(Sock* s, bool abort = false) {
  if (s->dead) return;
  if (abort && g_in_cb && s->tcp) {  // (lwIP still uses the pcb after the callback: later)
    if (!s->abort_later) s->abort_later = true, g_later.push_back(s);
    if (g_wake >= 0) {
      uint64_t one = 1;
      (void)::write(g_wake, &one, sizeof one);
    }
    return;
  }
  if (g_debug)
    std::fprintf(stderr, "vu-vstack: %llx: closed fd %d (%s%s%s)\n", static_cast<unsigned long long>(s->id), s->fd, abort ? "abort" : "",
                 s->hup ? " view closed" : "", s->rd_eof ? " eof" : "");
  s->dead = true;
  unwatch(s);
  for (Sock* p : s->pending) kill_sock(p, true);
  s->pending.clear();
  if (s->tcp) {
    tcp_pcb* pcb = s->tcp;
    s->tcp = nullptr;
    drop_rx(s);
    if (s->listening) {  // (lwIP asserts on the other callbacks of a listening pcb)
      tcp_arg(pcb, nullptr);
      tcp_accept(pcb, nullptr);
      tcp_close(pcb);
    } else if (detach_tcp(pcb), abort || s->connecting) {
      tcp_abort(pcb);
    } else if (tcp_close(pcb) != ERR_OK) {
      tcp_abort(pcb);
    }
  }
  if (s->rx) pbuf_free(s->rx), s->rx = nullptr;
  if (s->udp) udp_remove(s->udp), s->udp = nullptr;
  if (s->raw) raw_remove(s->raw), s->raw = nullptr;
  answer(&s->reply, -1, ECONNABORTED);
  if (s->fd >= 0) ::close(s->fd);
  s->fd = -1;
  auto it = g_socks.find(s->id);
  if (it != g_socks.end() && it->second == s) g_socks.erase(it);
  g_dead.push_back(s);
}

// A connection's end seen by the view while it keeps its socket: this end of the pair closed,
// with the held byte (`closed` in Sock) unread when `reset` — the view reads what it has, then
// ECONNRESET once, then end-of-file, and its writes fail with EPIPE — or taken first (no error:
// end-of-file). The Sock stays (names, SO_ERROR) until its id is reused, at most kMaxClosed.
void close_end(Sock* s, bool reset) {
  if (s->fd < 0 || s->dead || s->closed) return;
  unwatch(s);
  if (!reset)  // what the view wrote and nobody will send, the held byte with it
    for (int i = 0; i < 64 && ::recv(s->fd, g_scratch.data(), g_scratch.size(), MSG_DONTWAIT) > 0; ++i) {
    }
  ::close(s->fd);
  s->fd = -1;
  s->closed = true;
  if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: end closed (%s)\n", static_cast<unsigned long long>(s->id), reset ? "reset" : "eof");
  g_closed.push_back(s->id);
  while (g_closed.size() > kMaxClosed) {
    auto it = g_socks.find(g_closed.front());
    g_closed.pop_front();
    if (it != g_socks.end() && it->second->closed && !it->second->tcp) kill_sock(it->second);
  }
}

constexpr uint32_t kSendRoom = 8192;  // tcp_sndbuf() at which reading the pair resumes

void update_tcp(Sock* s);

// Network → view: what the pair takes of the queue, acknowledged to lwIP (tcp_recved).
void flush_rx(Sock* s) {
  if (s->fd < 0 || s->dead) return;
  while (s->rx) {
    iovec iov[64];
    int k = 0;
    for (pbuf* q = s->rx; q && k < 64; q = q->next)
      if (q->len) iov[k++] = {q->payload, q->len};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = static_cast<size_t>(k);
    ssize_t n = ::sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {  // the view is gone: what comes is dropped
      if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: to the view: %zd %s\n", static_cast<unsigned long long>(s->id), n, std::strerror(errno));
      s->hup = true;
      drop_rx(s);
      break;
    }
    for (size_t left = static_cast<size_t>(n); left;) {
      uint16_t c = static_cast<uint16_t>(std::min<size_t>(left, 0xffff));
      s->rx = pbuf_free_header(s->rx, c);
      if (s->tcp) tcp_recved(s->tcp, c);
      left -= c;
    }
  }
  if (!s->rx && s->rx_fin && !s->fin_sent && !s->reset) {
    s->fin_sent = true;
    if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: end-of-file to the view\n", static_cast<unsigned long long>(s->id));
    ::shutdown(s->fd, SHUT_WR);
  }
  // A reset: what the pair took of what came before it is the view's to read, then the error
  // (close_end); the rest is dropped, as the reset's. After the FIN, end-of-file stays (Linux:
  // a reset in CLOSE_WAIT reads 0, writes EPIPE).
  if (s->reset) {
    if (s->rx) pbuf_free(s->rx), s->rx = nullptr;
    close_end(s, !s->rx_fin || !s->fin_sent);
  }
}

// View → network: as much as lwIP's send buffer takes.
void pump_tx(Sock* s) {
  if (s->fd < 0 || s->dead || !s->tcp || !s->connected) return;
  bool wrote = false;
  while (!s->rd_eof) {
    if (!s->tx.empty()) {
      uint16_t k = static_cast<uint16_t>(std::min<size_t>({s->tx.size(), tcp_sndbuf(s->tcp), 0xffff}));
      if (!k || tcp_write(s->tcp, s->tx.data(), k, TCP_WRITE_FLAG_COPY) != ERR_OK) break;
      s->tx.erase(0, k);
      wrote = true;
      continue;
    }
    size_t room = std::min<size_t>(tcp_sndbuf(s->tcp), 0xffff);
    if (room < 1 || tcp_sndqueuelen(s->tcp) + 4 >= TCP_SND_QUEUELEN) break;
    // What the view wrote after the held byte (SO_PEEK_OFF 1), then taken but its last byte
    // (the new held byte): see Sock::closed.
    ssize_t n = ::recv(s->fd, g_buf.data(), room, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == ECONNRESET) {  // the view closed with data unread: an RST (on_pair)
      s->view_reset = s->rd_eof = true;
      break;
    }
    if (n <= 0) {  // the view's end-of-file (shutdown or close): the FIN
      s->rd_eof = true;
      tcp_shutdown(s->tcp, 0, 1);
      wrote = true;
      break;
    }
    while (::recv(s->fd, g_scratch.data(), static_cast<size_t>(n), MSG_DONTWAIT) < 0 && errno == EINTR) {
    }
    err_t e = tcp_write(s->tcp, g_buf.data(), static_cast<uint16_t>(n), TCP_WRITE_FLAG_COPY);
    if (e == ERR_MEM) {
      s->tx.assign(g_buf.data(), static_cast<size_t>(n));
    } else if (e != ERR_OK) {
      s->rd_eof = true;
      break;
    }
    wrote = true;
  }
  if (wrote && s->tcp) tcp_output(s->tcp);
}

// What a connection's pair waits for; its end once the view has closed and all it wrote is
// with lwIP.
void update_tcp(Sock* s) {
  if (s->dead || s->fd < 0) return;
  if (s->listening) return set_events(s, 0);
  if (s->hup && (s->view_reset || (s->linger0 && !(s->rd_eof && s->fin_sent)))) return kill_sock(s, true);  // (RST: on_pair)
  if (s->hup && (s->rd_eof || !s->tcp)) return kill_sock(s);
  uint32_t ev = 0;
  if (s->tcp && s->connected && !s->rd_eof && s->tx.empty() && tcp_sndbuf(s->tcp) >= kSendRoom &&
      tcp_sndqueuelen(s->tcp) + 4 < TCP_SND_QUEUELEN)
    ev |= EPOLLIN;
  if (s->rx && !s->hup) ev |= EPOLLOUT;
  if (s->hup && !(ev & EPOLLIN)) return unwatch(s);  // waits for room (tcp_sent) to drain
  set_events(s, ev);  // (EPOLLHUP, the view's close, comes unasked)
}

err_t on_recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t) {
  InCallback in;
  auto* s = static_cast<Sock*>(arg);
  if (!s) {
    if (p) tcp_recved(pcb, p->tot_len), pbuf_free(p);
    else tcp_close(pcb);
    return ERR_OK;
  }
  if (!p) {
    if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: FIN\n", static_cast<unsigned long long>(s->id));
    s->rx_fin = true;
  } else if (s->hup) {
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
  } else if (s->rx) {
    pbuf_cat(s->rx, p);
  } else {
    s->rx = p;
  }
  if (g_in_batch && s->fd >= 0) {
    if (!s->dirty) s->dirty = true, g_dirty.push_back(s);
    return ERR_OK;
  }
  flush_rx(s);
  update_tcp(s);
  return ERR_OK;
}

err_t on_sent(void* arg, tcp_pcb*, u16_t) {
  InCallback in;
  auto* s = static_cast<Sock*>(arg);
  if (!s || s->dead) return ERR_OK;
  if (s->tcp && tcp_sndbuf(s->tcp) >= kSendRoom) pump_tx(s);
  update_tcp(s);
  return ERR_OK;
}

void on_err(void* arg, err_t e) {  // the pcb is already freed
  auto* s = static_cast<Sock*>(arg);
  if (!s || s->dead) return;
  s->tcp = nullptr;
  InCallback in;
  if (s->connecting) {
    s->connecting = false;
    s->error = errno_of(e, true);
    // A non-blocking connect's failure: the view's read gives ECONNRESET (Linux: the error
    // itself; SO_ERROR tells it, vstack.cc); a blocking one's caller was told: end-of-file.
    // (The end closed before the answer: the monitor's SO_ERROR then takes the view's error.)
    if (!s->hup) close_end(s, s->nb_connect);
    answer(&s->reply, -1, s->error);
    if (s->hup) kill_sock(s);
    return;
  }
  if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: connection error %d\n", static_cast<unsigned long long>(s->id), e);
  if (e == ERR_CLSD) {  // (closed both ways, after what came: no error)
    s->rx_fin = true;
  } else {
    s->reset = true;
    s->error = errno_of(e);
    s->connected = false;
  }
  flush_rx(s);
  update_tcp(s);
}

Sock* new_tcp_sock(tcp_pcb* pcb, int domain) {
  auto* s = new Sock;
  s->kind = kTcp;
  s->domain = domain;
  s->tcp = pcb;
  tcp_arg(pcb, s);
  tcp_recv(pcb, on_recv);
  tcp_sent(pcb, on_sent);
  tcp_err(pcb, on_err);
  return s;
}

err_t on_connected(void* arg, tcp_pcb*, err_t) {
  InCallback in;
  auto* s = static_cast<Sock*>(arg);
  if (!s) return ERR_OK;
  s->connecting = false;
  s->connected = true;
  names_from_pcb(s);
  answer(&s->reply, 0, 0);
  pump_tx(s);  // what a non-blocking connect's caller already wrote
  update_tcp(s);
  return ERR_OK;
}

err_t on_accept(void* arg, tcp_pcb* pcb, err_t err) {
  InCallback in;
  auto* l = static_cast<Sock*>(arg);
  if (!l || l->dead || err != ERR_OK || !pcb) return ERR_VAL;
  // The accept queue full (the view does not accept, or a peer floods it): lwIP aborts the
  // connection (an RST) rather than queue without bound (Linux stops at the backlog too).
  if (l->pending.size() >= l->backlog) return ERR_MEM;
  Sock* n = new_tcp_sock(pcb, l->domain);
  n->linger0 = l->linger0;  // (inherited, as Linux's accepted sockets inherit SO_LINGER)
  if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: a connection\n", static_cast<unsigned long long>(l->id));
  n->connected = true;
  n->bound = true;
  names_from_pcb(n);
  l->pending.push_back(n);
  char one = 1;
  (void)::send(l->fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  return ERR_OK;
}

// UDP and ICMP: datagrams to the view, with their sender kept under their hash.
void to_view(Sock* s, const char* data, size_t n, const sockaddr_storage& from, int ttl = 0) {
  if (s->fd < 0 || s->dead) return;
  Datagram d{hash(data, n), from, len_of(from), ttl};
  if (s->senders.size() >= 4096) s->senders.pop_front();
  s->senders.push_back(d);
  (void)::send(s->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void on_udp(void* arg, udp_pcb*, pbuf* p, const ip_addr_t* addr, u16_t port) {
  auto* s = static_cast<Sock*>(arg);
  if (s && p->tot_len <= g_buf.size()) {
    pbuf_copy_partial(p, g_buf.data(), p->tot_len, 0);
    to_view(s, g_buf.data(), p->tot_len, from_ip(addr, port, s->domain));
  }
  pbuf_free(p);
}

// ICMP datagram sockets (ping): the view writes an echo request (ICMP header and data), reads
// the echo replies to its identifier (ICMP header and data, the IP header stripped), as Linux's
// ping sockets. lwIP's own ICMP still answers others' echo requests.
u8_t on_icmp(void* arg, raw_pcb*, pbuf* p, const ip_addr_t* addr) {
  auto* s = static_cast<Sock*>(arg);
  if (!s || p->tot_len > g_buf.size()) return 0;
  // lwIP's raw input gives the packet from its IP header.
  const size_t hl = ip_current_header_tot_len();
  if (p->tot_len < hl + 8 || p->len < 8) return 0;
  const auto* ip = static_cast<const uint8_t*>(p->payload);
  const int ttl = IP_IS_V4(addr) ? ip[8] : ip[7];
  // Every raw pcb sees every ICMP packet: the header decides before anything is copied.
  uint8_t h[8];
  if (pbuf_copy_partial(p, h, 8, static_cast<uint16_t>(hl)) != 8) return 0;
  uint16_t id;
  std::memcpy(&id, h + 4, 2);
  if (h[0] != (s->domain == AF_INET ? 0 : 129) || id != s->icmp_id) return 0;
  pbuf_copy_partial(p, g_buf.data(), static_cast<uint16_t>(p->tot_len - hl), static_cast<uint16_t>(hl));
  to_view(s, g_buf.data(), p->tot_len - hl, from_ip(addr, 0, s->domain), ttl);
  return 0;  // lwIP frees it
}


// The largest datagram an IP packet carries (as Linux: 65507 bytes of UDP over IPv4, 65527
// over IPv6); `to` null: the connected peer's family.
size_t max_dgram(const Sock* s, const ip_addr_t* to) {
  bool v4 = to ? IP_IS_V4(to) : s->domain == AF_INET || (s->udp && IP_IS_V4(&s->udp->remote_ip));
  return (v4 ? 65535 - 20 : 65535) - (s->kind == kUdp ? 8 : 0);
}

// ---- the view's end of a pair ---------------------------------------------------------------

void on_pair(Sock* s, uint32_t rev) {
  if (s->dead) return;
  if (rev & (EPOLLHUP | EPOLLERR)) s->hup = true;
  if (s->kind == kTcp) {
    if (s->listening || (!s->connected && !s->connecting)) {
      if (s->hup) kill_sock(s);
      return;
    }
    if (s->connecting) {
      if (s->hup) kill_sock(s, true);
      else set_events(s, 0);  // (its close only, until connected)
      return;
    }
    if (s->hup) {
      // The view's close (or both sides shut): with data it had not read (its end's queue:
      // af_unix gives this end ECONNRESET) or after SO_LINGER {1, 0}, an RST, as Linux's close
      // sends, and what it wrote and lwIP has not taken is dropped. (A linger after both FINs
      // changes nothing: the connection has ended.)
      int e = 0;
      socklen_t el = sizeof e;
      if (::getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == ECONNRESET) s->view_reset = true;
      if (s->view_reset || (s->linger0 && !(s->rd_eof && s->fin_sent))) return kill_sock(s, true);
    }
    if (rev & EPOLLOUT) flush_rx(s);
    if (rev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) pump_tx(s);
    update_tcp(s);
    return;
  }
  // datagrams from the view (a connected socket's send)
  for (int i = 0; i < 64 && (rev & EPOLLIN) && !s->rd_eof; ++i) {
    ssize_t n = ::recv(s->fd, g_buf.data(), g_buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (n == 0 && (rev & (EPOLLRDHUP | EPOLLHUP))) {
      s->rd_eof = true;
      break;
    }
    if (!s->connected) continue;
    if (static_cast<size_t>(n) > max_dgram(s, nullptr)) continue;  // (Linux: EMSGSIZE; the pair took it)
    pbuf* p = big_pbuf(PBUF_TRANSPORT, static_cast<size_t>(n));
    if (!p) continue;
    pbuf_take(p, g_buf.data(), static_cast<uint16_t>(n));
    if (s->udp) udp_send(s->udp, p);
    pbuf_free(p);
  }
  if (s->hup) return kill_sock(s);
  set_events(s, s->rd_eof ? 0 : EPOLLIN | EPOLLRDHUP);
}

// ---- requests -------------------------------------------------------------------------------

Sock* find(uint64_t id) {
  auto it = g_socks.find(id);
  return it == g_socks.end() || it->second->dead ? nullptr : it->second;
}

// A TCP bind: lwIP's SO_REUSEADDR semantics (TIME_WAIT ports reusable, as servers ask of
// Linux), and no two listeners or bound sockets of this view on one port and address.
int tcp_bind_checked(Sock* s, const ip_addr_t* ip, uint16_t port) {
  if (port) {
    for (const auto& [id, o] : g_socks) {
      if (o == s || o->dead || o->kind != kTcp || !o->bound || o->connected || !o->tcp) continue;
      if (o->tcp->local_port != port) continue;
      if (ip_addr_isany(&o->tcp->local_ip) || ip_addr_isany(ip) || ip_addr_cmp(&o->tcp->local_ip, ip)) return EADDRINUSE;
    }
  }
  ip_set_option(s->tcp, SOF_REUSEADDR);
  err_t e = tcp_bind(s->tcp, ip, port);
  return e == ERR_OK ? 0 : errno_of(e);
}

// The wildcard for a socket: an IPv6 socket takes IPv4 too unless IPV6_V6ONLY.
void wildcard(Sock* s, ip_addr_t* ip) {
  if (s->domain == AF_INET6 && ip_addr_isany(ip) && IP_IS_V6(ip) && !s->v6only) *ip = *IP_ANY_TYPE;
}

// One request; its reply sent on `rfd` now, or later (a TCP connect: when lwIP knows).
void serve(const VsReq& q, const char* payload, int rfd, int dfd) {
  VsRep r;
  auto done = [&](long ret, int err) {
    r.ret = ret;
    r.err = ret < 0 ? err : 0;
  };
  auto finish = [&] {
    if (rfd >= 0) {
      (void)::send(rfd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(rfd);
    }
    if (dfd >= 0) ::close(dfd);
  };
  if (q.op == kSocket) {
    if (dfd < 0) return done(-1, EINVAL), finish();
    if (Sock* old = find(q.id)) kill_sock(old, true);  // (a stale id: its pair is gone)
    const u8_t type = q.a == AF_INET6 ? IPADDR_TYPE_ANY : IPADDR_TYPE_V4;
    Sock* s = nullptr;
    if (q.b == SOCK_STREAM) {
      if (tcp_pcb* pcb = tcp_new_ip_type(type)) s = new_tcp_sock(pcb, q.a);
    } else if (q.c == IPPROTO_ICMP || q.c == IPPROTO_ICMPV6) {
      const bool v6 = q.a == AF_INET6;
      if (raw_pcb* pcb = raw_new_ip_type(v6 ? IPADDR_TYPE_V6 : IPADDR_TYPE_V4, v6 ? IP6_NEXTH_ICMP6 : IP_PROTO_ICMP)) {
        s = new Sock;
        s->kind = kIcmp;
        s->raw = pcb;
        raw_recv(pcb, on_icmp, s);
        if (v6) pcb->chksum_reqd = 1, pcb->chksum_offset = 2;  // ICMPv6's pseudo-header sum: lwIP's
        uint16_t id;
        (void)::getrandom(&id, sizeof id, 0);
        s->icmp_id = id;
      }
    } else if (udp_pcb* pcb = udp_new_ip_type(type)) {
      s = new Sock;
      s->kind = kUdp;
      s->udp = pcb;
      udp_recv(pcb, on_udp, s);
    }
    if (!s) return done(-1, ENOBUFS), finish();
    s->id = q.id;
    s->domain = q.a;
    s->fd = dfd;
    dfd = -1;
    ::fcntl(s->fd, F_SETFL, O_RDWR | O_NONBLOCK);
    if (s->kind == kTcp) {  // reads start after the held byte (Sock::closed)
      int one = 1;
      ::setsockopt(s->fd, SOL_SOCKET, SO_PEEK_OFF, &one, sizeof one);
    }
    g_socks[q.id] = s;
    // A stream socket's pair is watched for its close only (until it connects); a datagram
    // socket's for what the view sends on it too.
    set_events(s, s->kind == kTcp ? 0 : EPOLLIN | EPOLLRDHUP);
    return done(0, 0), finish();
  }
  if (q.op == kAccept) {
    Sock* l = find(q.id);
    if (!l || dfd < 0) return done(-1, EINVAL), finish();
    if (l->pending.empty()) return done(-1, EAGAIN), finish();
    Sock* n = l->pending.front();
    l->pending.pop_front();
    if (Sock* old = find(q.id2)) kill_sock(old, true);
    n->id = q.id2;
    n->fd = dfd;
    dfd = -1;
    ::fcntl(n->fd, F_SETFL, O_RDWR | O_NONBLOCK);
    int one = 1;
    ::setsockopt(n->fd, SOL_SOCKET, SO_PEEK_OFF, &one, sizeof one);  // (Sock::closed)
    g_socks[q.id2] = n;
    if (g_debug) std::fprintf(stderr, "vu-vstack: %llx: accepted as %llx (fd %d, %u bytes waiting)\n", static_cast<unsigned long long>(q.id), static_cast<unsigned long long>(q.id2), n->fd, n->rx ? n->rx->tot_len : 0);
    r.addr = n->peer;
    r.addrlen = len_of(n->peer);
    done(0, 0);
    finish();
    flush_rx(n);
    pump_tx(n);
    update_tcp(n);
    return;
  }
  if (q.op == kAddr || q.op == kLink || q.op == kRoute || q.op == kMac || q.op == kMtu) {
    // q.id: the interface (0: vde0, 1: vde1…)
    if (q.id >= g_ifs.size()) return done(-1, ENODEV), finish();
    netif& nif = g_ifs[q.id]->nif;
    if (q.op == kMtu) {
      nif.mtu = static_cast<u16_t>(std::clamp(q.a, 68, 65535 - 14));
#if LWIP_ND6_ALLOW_RA_UPDATES
      nif.mtu6 = nif.mtu;
#endif
      return done(0, 0), finish();
    }
    if (q.op == kMac) {
      std::memcpy(nif.hwaddr, &q.addr, 6);
      netif_create_ip6_linklocal_address(&nif, 1);  // fe80:: from the MAC, as the model's
      netif_ip6_addr_set_state(&nif, 0, IP6_ADDR_PREFERRED);
      return done(0, 0), finish();
    }
    if (q.op == kLink) {
      if (q.a) netif_set_up(&nif), netif_set_link_up(&nif);
      else netif_set_link_down(&nif), netif_set_down(&nif);
      return done(0, 0), finish();
    }
    ip_addr_t a;
    uint16_t port;
    if (!to_ip(q.addr, &a, &port)) return done(-1, EAFNOSUPPORT), finish();
    if (q.op == kAddr) {
      if (IP_IS_V4(&a)) {
        ip4_addr_t mask;
        mask.addr = htonl(q.b ? ~uint32_t{0} << (32 - q.b) : 0);
        if (q.a) netif_set_addr(&nif, ip_2_ip4(&a), &mask, netif_ip4_gw(&nif));
        else if (ip4_addr_cmp(ip_2_ip4(&a), netif_ip4_addr(&nif))) netif_set_addr(&nif, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4);
        else return done(-1, EADDRNOTAVAIL), finish();
        return done(0, 0), finish();
      }
      if (q.a) {
        s8_t idx = -1;
        ip6_addr_clear_zone(ip_2_ip6(&a));
        if (ip6_addr_islinklocal(ip_2_ip6(&a))) {
          ip6_addr_copy(*ip_2_ip6(&nif.ip6_addr[0]), *ip_2_ip6(&a));
          ip6_addr_assign_zone(ip_2_ip6(&nif.ip6_addr[0]), IP6_UNICAST, &nif);
          netif_ip6_addr_set_state(&nif, 0, IP6_ADDR_PREFERRED);
          return done(0, 0), finish();
        }
        if (netif_add_ip6_address(&nif, ip_2_ip6(&a), &idx) != ERR_OK || idx < 0) return done(-1, ENOSPC), finish();
        netif_ip6_addr_set_state(&nif, idx, IP6_ADDR_PREFERRED);  // no DAD: the view chose it
        return done(0, 0), finish();
      }
      s8_t idx = netif_get_ip6_addr_match(&nif, ip_2_ip6(&a));
      if (idx < 0) return done(-1, EADDRNOTAVAIL), finish();
      netif_ip6_addr_set_state(&nif, idx, IP6_ADDR_INVALID);
      return done(0, 0), finish();
    }
    // Routes: one interface, so every destination leaves by vde0; what a route can change is
    // the IPv4 default gateway. Others (IPv6 gateways: lwIP takes its routers from router
    // advertisements) are accepted and change nothing.
    ip_addr_t gw;
    if (q.b == 0 && IP_IS_V4(&a) && to_ip(q.addr2, &gw, &port) && IP_IS_V4(&gw)) {
      netif_set_gw(&nif, q.a ? ip_2_ip4(&gw) : IP4_ADDR_ANY4);
      // Several interfaces: the default route's is lwIP's default netif (where a destination
      // on none of their subnets goes), as the kernel's default route picks its device.
      if (q.a) netif_set_default(&nif);
    }
    return done(0, 0), finish();
  }
  Sock* s = find(q.id);
  if (!s) return done(-1, EBADF), finish();
  ip_addr_t ip{};
  uint16_t port = 0;
  switch (q.op) {
    case kBind: {
      if (!to_ip(q.addr, &ip, &port)) return done(-1, EAFNOSUPPORT), finish();
      if (s->bound) return done(-1, EINVAL), finish();
      wildcard(s, &ip);
      int e = 0;
      if (s->tcp) e = tcp_bind_checked(s, &ip, port);
      else if (s->udp) e = errno_of(udp_bind(s->udp, &ip, port));
      else if (s->raw) e = errno_of(raw_bind(s->raw, &ip));
      else e = EINVAL;
      if (e) return done(-1, e), finish();
      s->bound = true;
      names_from_pcb(s);
      return done(0, 0), finish();
    }
    case kListen: {
      if (s->kind != kTcp) return done(-1, EOPNOTSUPP), finish();
      if (s->listening) return done(0, 0), finish();
      if (!s->tcp || s->connected || s->connecting) return done(-1, EINVAL), finish();
      if (!s->bound) {
        ip_addr_t any = s->domain == AF_INET6 && !s->v6only ? *IP_ANY_TYPE : s->domain == AF_INET6 ? *IP6_ADDR_ANY : *IP4_ADDR_ANY;
        if (int e = tcp_bind_checked(s, &any, 0)) return done(-1, e), finish();
        s->bound = true;
      }
      err_t e = ERR_OK;
      tcp_pcb* l = tcp_listen_with_backlog_and_err(s->tcp, static_cast<u8_t>(std::min(q.a, 255)), &e);
      if (!l) return done(-1, errno_of(e)), finish();
      s->tcp = l;  // the old pcb is freed
      s->listening = true;
      char held;  // (a listener's pair carries only our bytes, one per connection: no held byte)
      (void)::recv(s->fd, &held, 1, MSG_DONTWAIT);
      s->backlog = static_cast<size_t>(std::clamp(q.a, 0, 4096)) + 1;
      tcp_arg(l, s);
      tcp_accept(l, on_accept);
      names_from_pcb(s);
      set_events(s, 0);
      return done(0, 0), finish();
    }
    case kConnect: {
      if (!to_ip(q.addr, &ip, &port)) return done(-1, EAFNOSUPPORT), finish();
      if (s->kind == kTcp) {
        if (s->connected) return done(-1, EISCONN), finish();
        if (s->connecting) return done(-1, EALREADY), finish();
        if (s->listening || !s->tcp) return done(-1, EINVAL), finish();
        if (!port) return done(-1, ECONNREFUSED), finish();
        err_t e = tcp_connect(s->tcp, &ip, port, on_connected);
        if (e != ERR_OK) {
          if (q.c) ::shutdown(s->fd, SHUT_RDWR);
          return done(-1, errno_of(e, true)), finish();
        }
        s->connecting = true;
        s->nb_connect = q.c != 0;
        s->bound = true;
        names_from_pcb(s);
        s->reply = rfd;  // answered by on_connected or on_err
        rfd = -1;
        return finish();
      }
      if (s->kind == kIcmp) {
        if (raw_connect(s->raw, &ip) != ERR_OK) return done(-1, ENETUNREACH), finish();
        s->connected = true;
        s->peer = from_ip(&ip, 0, s->domain);
        return done(0, 0), finish();
      }
      err_t e = udp_connect(s->udp, &ip, port);
      if (e != ERR_OK) return done(-1, errno_of(e)), finish();
      s->connected = true;
      names_from_pcb(s);
      if (s->local.ss_family == AF_INET && reinterpret_cast<sockaddr_in*>(&s->local)->sin_addr.s_addr == 0 &&
          IP_IS_V4(&ip)) {  // the source the route gives, as the kernel names it
        if (netif* out = ip4_route(ip_2_ip4(&ip)))
          reinterpret_cast<sockaddr_in*>(&s->local)->sin_addr.s_addr = netif_ip4_addr(out)->addr;
      } else if (s->local.ss_family == AF_INET6 && IP_IS_V6(&ip)) {
        auto* l = reinterpret_cast<sockaddr_in6*>(&s->local);
        if (IN6_IS_ADDR_UNSPECIFIED(&l->sin6_addr))
          if (netif* out = ip6_route(IP6_ADDR_ANY6, ip_2_ip6(&ip)))
            if (const ip_addr_t* src = ip6_select_source_address(out, ip_2_ip6(&ip)))
            std::memcpy(&l->sin6_addr, ip_2_ip6(src)->addr, 16);
      }
      return done(0, 0), finish();
    }
    case kName: {
      if (q.a && !s->connected) return done(-1, ENOTCONN), finish();
      r.addr = q.a ? s->peer : s->local;
      if (!q.a && !s->bound) r.addr = {}, r.addr.ss_family = static_cast<sa_family_t>(s->domain);
      r.addrlen = len_of(r.addr);
      return done(0, 0), finish();
    }
    case kSendTo: {
      if (!to_ip(q.addr, &ip, &port)) return done(-1, EAFNOSUPPORT), finish();
      if (s->kind == kTcp) return done(-1, EISCONN), finish();
      if (q.len > max_dgram(s, &ip)) return done(-1, EMSGSIZE), finish();  // (not cut to 16 bits)
      pbuf* p = big_pbuf(PBUF_TRANSPORT, q.len);
      if (!p) return done(-1, ENOBUFS), finish();
      pbuf_take(p, payload, static_cast<uint16_t>(q.len));
      err_t e;
      if (s->kind == kIcmp) {
        // An echo request: the identifier is the socket's, the checksum computed here.
        auto* h = static_cast<uint8_t*>(p->payload);
        if (q.len < 8 || h[0] != (s->domain == AF_INET ? 8 : 128)) {
          pbuf_free(p);
          return done(-1, EINVAL), finish();
        }
        std::memcpy(h + 4, &s->icmp_id, 2);
        h[2] = h[3] = 0;
        if (s->domain == AF_INET) {
          uint16_t sum = inet_chksum_pbuf(p);
          std::memcpy(h + 2, &sum, 2);
        }
        e = raw_sendto(s->raw, p, &ip);
      } else {
        e = udp_sendto(s->udp, p, &ip, port);
      }
      pbuf_free(p);
      if (e != ERR_OK) return done(-1, errno_of(e)), finish();
      names_from_pcb(s);
      return done(q.len, 0), finish();
    }
    case kRecvAddr: {
      const uint64_t h = q.id2;
      if (q.c) {  // MSG_PEEK: the datagram stays, and so does its sender
        for (const Datagram& d : s->senders)
          if (d.hash == h) {
            r.addr = d.from, r.addrlen = d.len;
            return done(d.ttl, 0), finish();
          }
        return done(-1, ENOENT), finish();
      }
      // Datagrams the view read without asking for the sender are passed over.
      while (!s->senders.empty()) {
        Datagram d = s->senders.front();
        s->senders.pop_front();
        if (d.hash == h) {
          r.addr = d.from, r.addrlen = d.len;
          return done(d.ttl, 0), finish();
        }
      }
      return done(-1, ENOENT), finish();
    }
    case kSetOpt: case kGetOpt: {
      const bool set = q.op == kSetOpt;
      if (q.a == SOL_SOCKET && q.b == SO_LINGER && set) {  // c: 1 for {1, 0} (vstack.cc)
        s->linger0 = q.c != 0;
        return done(0, 0), finish();
      }
      if (q.a == SOL_SOCKET && q.b == SO_ERROR && !set) {  // the connection's end, asked once
        const int e = s->error;
        s->error = 0;
        return done(e, 0), finish();
      }
      if (q.a == IPPROTO_TCP && q.b == TCP_NODELAY && s->tcp) {
        if (!set) return done(tcp_nagle_disabled(s->tcp) ? 1 : 0, 0), finish();
        if (q.c) tcp_nagle_disable(s->tcp);
        else tcp_nagle_enable(s->tcp);
        return done(0, 0), finish();
      }
      if (q.a == IPPROTO_IPV6 && q.b == IPV6_V6ONLY && s->domain == AF_INET6) {
        if (!set) return done(s->v6only ? 1 : 0, 0), finish();
        if (s->bound) return done(-1, EINVAL), finish();
        s->v6only = q.c != 0;
        return done(0, 0), finish();
      }
      if (!set && q.a == IPPROTO_TCP && q.b == TCP_MAXSEG && s->tcp) return done(tcp_mss(s->tcp), 0), finish();
      return done(-1, ENOPROTOOPT), finish();
    }
    default: return done(-1, ENOSYS), finish();
  }
}

// The channel: every request waiting (non-blocking).
bool on_channel(int ch) {
  static std::vector<char> buf(sizeof(VsReq) + kMaxPayload);
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(2 * sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = ::recvmsg(ch, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;  // vu is gone (ended or killed: the kernel closed its end)
    int fds[2] = {-1, -1};
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        std::memcpy(fds, CMSG_DATA(c), std::min<size_t>(c->cmsg_len - CMSG_LEN(0), sizeof fds));
    if (fds[0] >= 0 && (mh.msg_flags & MSG_CTRUNC)) {  // (our descriptor table full: the data pair was lost)
      VsRep r;
      r.err = EMFILE;
      (void)::send(fds[0], &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fds[0]);
      if (fds[1] >= 0) ::close(fds[1]);
      continue;
    }
    if (fds[0] < 0 || static_cast<size_t>(n) < sizeof(VsReq)) {
      if (fds[0] >= 0) ::close(fds[0]);
      if (fds[1] >= 0) ::close(fds[1]);
      continue;
    }
    VsReq q;
    std::memcpy(&q, buf.data(), sizeof q);
    if (q.len > static_cast<size_t>(n) - sizeof q) q.len = static_cast<uint32_t>(static_cast<size_t>(n) - sizeof q);
    if (q.addrlen > sizeof q.addr) q.addrlen = sizeof q.addr;
    if (g_debug)
      std::fprintf(stderr, "vu-vstack: op %u id %llx a %d b %d c %d\n", q.op, static_cast<unsigned long long>(q.id), q.a,
                   q.b, q.c);
    serve(q, buf.data() + sizeof q, fds[0], fds[1]);
  }
}

std::mutex g_init_mu;
std::condition_variable g_init_cv;
bool g_init_done = false;

void init_done(void*) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  g_init_done = true;
  g_init_cv.notify_all();
}

void watch(int fd, void* tag) {
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = tag;
  ::epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e);
}

// One turn of the loop: waits (unlocked) for at most `ms`, then serves what came under the lock.
// false: the channel closed.
bool turn(int ch, int ms) {
  epoll_event evs[64];
  int n = ::epoll_wait(g_ep, evs, 64, ms);
  bool open = true;
  LOCK_TCPIP_CORE();
  for (int i = 0; i < n; ++i) {
    void* tag = evs[i].data.ptr;
    Iface* link = nullptr;
    for (Iface* f : g_ifs) link = tag == f ? f : link;
    if (link) {
      if (evs[i].events & EPOLLOUT) flush_txq(link);
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) vde_input(link);
    } else if (tag == &g_tag_channel) {
      open = on_channel(ch);
    } else if (tag == &g_wake) {
      uint64_t v;
      (void)::read(g_wake, &v, sizeof v);
    } else {
      on_pair(static_cast<Sock*>(tag), evs[i].events);
    }
  }
  // The aborts asked for inside lwIP's callbacks (kill_sock), now that lwIP is done with the pcbs.
  while (!g_later.empty()) {
    std::vector<Sock*> later;
    later.swap(g_later);
    for (Sock* s : later) {
      s->abort_later = false;
      kill_sock(s, true);
    }
  }
  for (Sock* s : g_dead) delete s;
  g_dead.clear();
  UNLOCK_TCPIP_CORE();
  return open;
}

}  // namespace

int main(int argc, char** argv) {
  // No PDEATHSIG: when vu ends, the channel's end-of-file says so, and what lwIP still has to
  // send is sent first (below).
  ::signal(SIGPIPE, SIG_IGN);
  // One descriptor per view socket (the stack's end of its pair): as many as the hard limit allows,
  // not the soft 1024 (the view's own limit is what bounds it, as on Linux).
  if (rlimit rl; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::dup2(2, 1);  // lwIP's assertion messages (printf) go where vu's errors go
  bool stats = false;
  int a = 1;
  int frames = 0;
  if (a < argc && std::strcmp(argv[a], "--stats") == 0) stats = true, ++a;
  if (a + 1 < argc && std::strcmp(argv[a], "--frames") == 0) frames = std::atoi(argv[a + 1]), a += 2;
  if (frames ? (argc != a || frames < 1 || frames > 16) : argc - a != 1) {
    std::fprintf(stderr, "usage: vu-vstack [--stats] VNL | vu-vstack --frames N (started by vu, with its channel on fd 3 and "
                         "the N frame links on fds 4…)\n");
    return 2;
  }
  const int ch = 3;
  g_debug = std::getenv("VU_VSTACK_DEBUG") != nullptr;
  if (::fcntl(ch, F_GETFD) < 0) return 2;
  ::fcntl(ch, F_SETFD, FD_CLOEXEC);
  unsigned seed;
  if (::getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = static_cast<unsigned>(::getpid());
  std::srand(seed);  // lwIP's LWIP_RAND: initial sequence numbers, ephemeral ports
  for (int i = 0; i < std::max(frames, 1); ++i) {
    auto* f = new Iface;
    if (::getrandom(f->mac, sizeof f->mac, 0) != sizeof f->mac) std::memset(f->mac, 0x5a, sizeof f->mac);
    f->mac[0] = (f->mac[0] & 0xfe) | 0x02;  // unicast, locally administered (vu's kMac replaces it)
    if (frames) {
      f->fd = 4 + i;
      if (::fcntl(f->fd, F_SETFD, FD_CLOEXEC) < 0) return 2;
    }
    g_ifs.push_back(f);
  }
  if (!frames) {
    const char* vnl = argv[a];
    errno = 0;
    vde_open_args args{};
    args.port = 0;
    args.group = nullptr;
    args.mode = 0700;
    g_ifs[0]->vde = vde_open(const_cast<char*>(vnl), const_cast<char*>("vu-vstack"), &args);
    if (!g_ifs[0]->vde) {
      std::fprintf(stderr, "vu-vstack: cannot plug into %s%s%s\n", vnl, errno ? ": " : "", errno ? std::strerror(errno) : "");
      return 1;
    }
  }
  {
    tcpip_init(init_done, nullptr);
    std::unique_lock<std::mutex> lock(g_init_mu);
    g_init_cv.wait(lock, [] { return g_init_done; });
  }
  g_ep = ::epoll_create1(EPOLL_CLOEXEC);
  LOCK_TCPIP_CORE();
  for (Iface* f : g_ifs) {
    netif_add(&f->nif, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4, f, vde_netif_init, netif_input);
    netif_create_ip6_linklocal_address(&f->nif, 1);
    netif_ip6_addr_set_state(&f->nif, 0, IP6_ADDR_PREFERRED);
  }
  netif_set_default(first_if());
  UNLOCK_TCPIP_CORE();
  for (Iface* f : g_ifs) {
    const int fd = f->data_fd();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    watch(fd, f);
  }
  ::fcntl(ch, F_SETFL, ::fcntl(ch, F_GETFL) | O_NONBLOCK);
  watch(ch, &g_tag_channel);
  g_wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_wake >= 0) watch(g_wake, &g_wake);
  while (turn(ch, -1)) {
  }
  ::epoll_ctl(g_ep, EPOLL_CTL_DEL, ch, nullptr);
  // Linger: the view's last process wrote and closed, and vu ended with it, but what lwIP still
  // holds (the end of a transfer, the FINs) has to go out, as a kernel socket's would after its
  // process exits. Until lwIP's connections have closed, at most 3 s.
  if (g_debug) std::fprintf(stderr, "vu-vstack: channel closed, lingering\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    bool open = false;
    LOCK_TCPIP_CORE();
    for (tcp_pcb* p = tcp_active_pcbs; p; p = p->next)
      open = open || p->unsent || p->unacked || p->state == SYN_SENT || p->state == FIN_WAIT_1 ||
             p->state == CLOSING || p->state == LAST_ACK;
    UNLOCK_TCPIP_CORE();
    if (!open || std::chrono::steady_clock::now() >= deadline) break;
    turn(ch, 20);
  }
  // What is left (FIN_WAIT_2, a peer still sending, the linger's end) is reset: the peers learn
  // now that this host is gone, rather than retransmit to it for minutes.
  LOCK_TCPIP_CORE();
  while (tcp_pcb* p = tcp_active_pcbs) {
    tcp_arg(p, nullptr);
    tcp_err(p, nullptr);
    tcp_abort(p);
  }
  UNLOCK_TCPIP_CORE();
  // The last frames (those resets, a view's last RST or FIN) reach the switch before this port
  // goes: vde_switch drops what it reads from a port it has closed, and it may see the control
  // connection's end first. Bounded: 300 ms for the queue here and the bytes the switch has
  // not read yet (SIOCOUTQ of the data socket).
  for (int i = 0; i < 30; ++i) {
    bool queued = false;
    LOCK_TCPIP_CORE();
    for (Iface* f : g_ifs) {
      flush_txq(f);
      queued = queued || !f->txq.empty();
    }
    UNLOCK_TCPIP_CORE();
    for (Iface* f : g_ifs) {
      int out = 0;
      queued = queued || (::ioctl(f->data_fd(), SIOCOUTQ, &out) == 0 && out > 0);
    }
    if (!queued) break;
    ::usleep(10000);
  }
  if (stats) {
    std::string line = vu::vdens::stats_line("vde0", "vde", g_ifs[0]->stats);
    std::fprintf(stderr, "vu: net: %s\n", line.c_str());
  }
  if (g_debug) std::fprintf(stderr, "vu-vstack: exit\n");
  vu::vdens::end_plug_children();  // cmd:// and the like: vde_close waits for them (vdens/plug_children.h)
  if (g_ifs[0]->vde) vde_close(g_ifs[0]->vde);
  ::_exit(0);  // lwIP's thread still runs: no destructors
}
