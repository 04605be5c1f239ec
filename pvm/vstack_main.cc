// pvm/vstack_main.cc — vu-vstack: the user-mode TCP/IP stack (LWIPv6) of one pvm view on a
// VDE network. Started by vu (pvm/vstack.cc) as `vu-vstack VNL` with the channel on fd 3; ends
// when the channel closes (vu gone). Dynamically linked: LWIPv6 loads libvdeplug (and its VNL
// plugins) with dlopen, which a static vu cannot do. The design is in pvm/vstack.h; the
// messages in pvm/vstack_proto.h.
//
// Each view socket is one end of a socketpair in the view; the other end is here, served by
// pump threads: bytes from the view go to the LWIPv6 socket (lwip_write/lwip_send) and back
// (lwip_read/lwip_recvfrom → write). A listening socket's pair carries one byte per connection
// waiting (so the view's poll/select sees it readable); the monitor takes the byte and asks
// for the connection (kAccept). A datagram's sender does not fit in the pair: it is kept here
// under the datagram's hash, and a recvfrom that wants it asks for it (kRecvAddr).
extern "C" {
#include <lwipv6.h>
}

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pvm/vstack_proto.h"

namespace {

using namespace vu::pvm::vs;

bool g_debug = false;  // $VU_VSTACK_DEBUG: each request on stderr
struct stack* g_stack = nullptr;
struct netif* g_if = nullptr;

struct Datagram {
  uint64_t hash;
  sockaddr_storage from;
  socklen_t len;
};

constexpr int kTick = 200;  // ms
struct Closer {
  std::mutex mu;
  std::condition_variable cv;
  bool reader_done = false;
  std::atomic<bool> asked{false};
  // The view closed its end: the reader is asked to stop (it does within kTick), and the socket
  // is closed here, on the thread that wrote to it (closed from another thread, LWIPv6 dropped
  // the end of what was written). lwip < 0: nothing to close (a datagram socket's reader does).
  void view_closed(int lwip) {
    asked = true;
    if (lwip < 0) return;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return reader_done; });
    lwip_close(lwip);
  }
  void reader_ends() {
    std::lock_guard<std::mutex> lock(mu);
    reader_done = true;
    cv.notify_all();
  }
};

struct Sock {
  int lwip = -1;
  int data = -1;  // the stack's end of the view socket's pair
  int type = SOCK_STREAM;
  std::mutex mu;
  std::deque<std::pair<int, sockaddr_storage>> pending;  // accepted, not yet taken (listeners)
  std::deque<Datagram> senders;                          // datagrams in the pair (UDP)
  bool pumping = false;
  bool streaming = false;  // a connection's pumps run (the linger at exit waits for them)
  Closer closer;  // UDP: the receiving pump closes the LWIPv6 socket (pump_dgram_in)
  bool receiving = false;  // UDP: the pump to the view runs (from the first bind/connect/sendto)
  bool owns_data = false;  // UDP: the pair closed with the last reference (two pumps use it)
  // The names: LWIPv6 1.5a's getsockname/getpeername fail on datagram sockets (EINVAL) and
  // answer wrongly on stream ones (getsockname gives the remote end, getpeername a wrong
  // address; accept fills in nothing), so they are kept here. An unbound socket is bound here
  // (a port of our choosing) before it connects or sends, so its port is known.
  int domain = AF_INET;
  bool bound = false, connected = false;
  sockaddr_storage local{}, peer{};
  ~Sock() {
    if (owns_data && data >= 0) ::close(data);
  }
};

std::mutex g_mu;
std::map<uint64_t, std::shared_ptr<Sock>> g_socks;

std::shared_ptr<Sock> find(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_socks.find(id);
  return it == g_socks.end() ? nullptr : it->second;
}
void forget(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_socks.erase(id);
}

bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Closing. LWIPv6 1.5a crashes or resets the connection when a socket is closed while another
// thread reads it, and has no receive timeout: the thread that reads the LWIPv6 socket waits in
// lwip_poll for at most kTick and is the one that closes it, once the view has closed its end
// (`closing`), or the other side does when the reader has already ended.
// Waits until the LWIPv6 socket is readable (true) or the view's end was closed (false).
bool readable(int lwip, const Closer& c) {
  for (;;) {
    if (c.asked) return false;
    pollfd p{lwip, POLLIN, 0};
    int r = lwip_poll(&p, 1, kTick);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // the read says what is wrong
  }
}
// After the view's end-of-file: waits for its close (every descriptor; a shutdown(SHUT_WR)
// alone leaves it readable for what comes back).
void wait_closed(int data) {
  pollfd p{data, 0, 0};
  while (::poll(&p, 1, -1) == 0 || (p.revents == 0 && errno == EINTR)) {
  }
}

// The pumps of a connected stream socket: one thread each way. LWIPv6 1.5a's shutdown sends no
// FIN (only its close does), so a view's shutdown(SHUT_WR) cannot be passed on: the FIN goes
// when the view has closed the socket (every descriptor of it). The pair ends when both pumps
// have.
void pump_stream(uint64_t id, std::shared_ptr<Sock> s) {
  auto done = std::make_shared<std::atomic<int>>(0);
  auto closer = std::make_shared<Closer>();
  auto finish = [id, s, done] {
    if (done->fetch_add(1) == 1) {
      ::close(s->data);
      forget(id);
    }
  };
  std::thread([s, finish, closer] {  // view → network
    std::vector<char> buf(65536);
    long long total = 0;
    for (;;) {
      ssize_t n = ::recv(s->data, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (n == 0) {
        wait_closed(s->data);
        break;
      }
      ssize_t off = 0;
      while (off < n) {
        ssize_t w = lwip_write(s->lwip, buf.data() + off, static_cast<int>(n - off));
        if (w <= 0) {
          if (g_debug) std::fprintf(stderr, "vu-vstack: lwip_write %zd: %s\n", w, std::strerror(errno));
          goto out;
        }
        off += w;
      }
      total += n;
    }
  out:
    if (g_debug) std::fprintf(stderr, "vu-vstack: to the network %lld bytes\n", total);
    closer->view_closed(s->lwip);  // the FIN
    finish();
  }).detach();
  std::thread([s, finish, closer] {  // network → view
    std::vector<char> buf(65536);
    long long total = 0;
    while (readable(s->lwip, *closer)) {
      ssize_t n = lwip_read(s->lwip, buf.data(), static_cast<int>(buf.size()));
      if (g_debug && n <= 0) std::fprintf(stderr, "vu-vstack: lwip_read %zd: %s\n", n, std::strerror(errno));
      if (n <= 0 || !write_all(s->data, buf.data(), static_cast<size_t>(n))) break;
      total += n;
    }
    if (g_debug) std::fprintf(stderr, "vu-vstack: to the view %lld bytes (asked %d)\n", total, closer->asked.load());
    ::shutdown(s->data, SHUT_WR);
    closer->reader_ends();
    finish();
  }).detach();
}

// A datagram socket's pumps: from the view (send on a connected socket) and to it (started
// with its port, pump_dgram_in).
void pump_dgram(uint64_t id, std::shared_ptr<Sock> s) {
  std::thread([id, s] {  // view → network; ends when the view's socket is closed
    std::vector<char> buf(65536);
    for (;;) {
      ssize_t n = ::recv(s->data, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (n == 0) {  // closed, or only shut down for writing (socat does): wait for the close
        wait_closed(s->data);
        break;
      }
      (void)lwip_send(s->lwip, buf.data(), static_cast<int>(n), 0);
    }
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->receiving) lwip_close(s->lwip);  // else the receiving pump closes it
      s->receiving = true;                      // and none starts now
    }
    s->closer.view_closed(-1);
    forget(id);
  }).detach();
}

// To the view: started once the socket has a port (LWIPv6 fails a receive before).
void pump_dgram_in(std::shared_ptr<Sock> s) {
  std::thread([s] {
    std::vector<char> buf(65536);
    while (readable(s->lwip, s->closer)) {
      Datagram d{};
      d.len = sizeof d.from;
      ssize_t n = lwip_recvfrom(s->lwip, buf.data(), static_cast<int>(buf.size()), 0,
                                reinterpret_cast<sockaddr*>(&d.from), &d.len);
      if (n < 0) break;
      d.hash = hash(buf.data(), static_cast<size_t>(n));
      {
        std::lock_guard<std::mutex> lock(s->mu);
        if (s->senders.size() >= 4096) s->senders.pop_front();
        s->senders.push_back(d);
      }
      if (::send(s->data, buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL) < 0 && errno != ENOBUFS &&
          errno != EAGAIN)
        break;
    }
    // Ended by the view's close (or an error): the socket is closed here, where it is read.
    while (!s->closer.asked) ::usleep(kTick * 1000);
    lwip_close(s->lwip);
  }).detach();
}

// A listening socket: connections accepted as they come, one byte each in the pair.
void pump_listen(uint64_t id, std::shared_ptr<Sock> s) {
  std::thread([id, s] {
    for (;;) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      int c = lwip_accept(s->lwip, reinterpret_cast<sockaddr*>(&peer), &len);
      if (c < 0) break;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        s->pending.emplace_back(c, peer);
      }
      char one = 1;
      if (!write_all(s->data, &one, 1)) break;
    }
    lwip_close(s->lwip);
    ::close(s->data);
    std::lock_guard<std::mutex> lock(s->mu);
    for (auto& p : s->pending) lwip_close(p.first);
    s->pending.clear();
    forget(id);
  }).detach();
}

socklen_t len_of(const sockaddr_storage& a) {
  return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}
uint16_t* port_of(sockaddr_storage& a) {
  return a.ss_family == AF_INET6 ? &reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                                 : &reinterpret_cast<sockaddr_in*>(&a)->sin_port;
}
// Binds a datagram socket to `want` (port 0: an ephemeral port chosen here, as the kernel would).
int bind_port(Sock& s, sockaddr_storage want) {
  if (*port_of(want)) {
    if (lwip_bind(s.lwip, reinterpret_cast<sockaddr*>(&want), len_of(want)) < 0) return errno;
  } else {
    static std::atomic<unsigned> next{32768u + static_cast<unsigned>(::getpid()) % 28000u};
    int e = EADDRINUSE;
    for (int i = 0; i < 64 && e == EADDRINUSE; ++i) {
      *port_of(want) = htons(static_cast<uint16_t>(32768u + next.fetch_add(1) % 28232u));
      e = lwip_bind(s.lwip, reinterpret_cast<sockaddr*>(&want), len_of(want)) < 0 ? errno : 0;
    }
    if (e) return e;
  }
  s.local = want;
  s.bound = true;
  return 0;
}
int autobind(Sock& s) {
  if (s.bound) return 0;
  sockaddr_storage any{};
  any.ss_family = static_cast<sa_family_t>(s.domain);
  return bind_port(s, any);
}

// The view's addresses (kAddr), to name the local end of a connection: the address on the
// peer's subnet, else the first one of the family; loopback for loopback.
struct OwnAddr {
  int family, prefix;
  unsigned char a[16];
};
std::mutex g_addr_mu;
std::vector<OwnAddr> g_addrs;

// `local` with its address, if a wildcard, replaced by ours towards `peer`.
void name_local(sockaddr_storage* local, const sockaddr_storage& peer) {
  if (local->ss_family == AF_INET) {
    auto* l = reinterpret_cast<sockaddr_in*>(local);
    const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);
    if (l->sin_addr.s_addr || peer.ss_family != AF_INET) return;
    if ((ntohl(p->sin_addr.s_addr) >> 24) == 127) return void(l->sin_addr = p->sin_addr);
    std::lock_guard<std::mutex> lock(g_addr_mu);
    const OwnAddr* best = nullptr;
    for (const OwnAddr& o : g_addrs)
      if (o.family == AF_INET && (!best || same_net(o.a, reinterpret_cast<const unsigned char*>(&p->sin_addr), o.prefix)))
        best = &o;
    if (best) std::memcpy(&l->sin_addr, best->a, 4);
  } else if (local->ss_family == AF_INET6) {
    auto* l = reinterpret_cast<sockaddr_in6*>(local);
    const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);
    if (!IN6_IS_ADDR_UNSPECIFIED(&l->sin6_addr) || peer.ss_family != AF_INET6) return;
    if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr)) return void(l->sin6_addr = p->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr)) {
      std::lock_guard<std::mutex> lock(g_addr_mu);
      for (const OwnAddr& o : g_addrs)
        if (o.family == AF_INET) {
          l->sin6_addr.s6_addr[10] = l->sin6_addr.s6_addr[11] = 0xff;
          std::memcpy(l->sin6_addr.s6_addr + 12, o.a, 4);
          if (same_net(o.a, p->sin6_addr.s6_addr + 12, o.prefix)) break;
        }
      return;
    }
    std::lock_guard<std::mutex> lock(g_addr_mu);
    for (const OwnAddr& o : g_addrs)
      if (o.family == AF_INET6) {
        std::memcpy(&l->sin6_addr, o.a, 16);
        if (same_net(o.a, p->sin6_addr.s6_addr, o.prefix)) break;
      }
  }
}

void receive(const std::shared_ptr<Sock>& s) {
  if (s->type != SOCK_DGRAM) return;
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->receiving) return;
  s->receiving = true;
  pump_dgram_in(s);
}

ip_addr to_lwip(const sockaddr_storage& a) {
  ip_addr r{};
  if (a.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    r.addr[2] = IP64_PREFIX;
    r.addr[3] = s->sin_addr.s_addr;
  } else {
    std::memcpy(r.addr, &reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr, 16);
  }
  return r;
}
ip_addr mask_of(int family, int prefix) {
  ip_addr m{};
  int bits = family == AF_INET ? 96 + prefix : prefix;
  for (int i = 0; i < 4; ++i) {
    int b = std::min(32, std::max(0, bits - 32 * i));
    m.addr[i] = htonl(b ? ~uint32_t{0} << (32 - b) : 0);
  }
  return m;
}

VsRep serve(const VsReq& q, const char* payload, int fd) {
  VsRep r;
  auto fail = [&](int e) {
    r.ret = -1;
    r.err = e;
    return r;
  };
  auto result = [&](long v) {
    r.ret = v;
    r.err = v < 0 ? errno : 0;
    return r;
  };
  switch (q.op) {
    case kSocket: {
      if (fd < 0) return fail(EINVAL);
      int l = lwip_msocket(g_stack, q.a, q.b, 0);
      if (l < 0) return ::close(fd), fail(errno);
      auto s = std::make_shared<Sock>();
      s->lwip = l;
      s->data = fd;
      s->type = q.b;
      s->domain = q.a;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        g_socks[q.id] = s;
      }
      if (q.b == SOCK_DGRAM) s->owns_data = true, pump_dgram(q.id, s);
      return result(0);
    }
    case kAccept: {
      auto s = find(q.id);
      if (!s || fd < 0) return ::close(fd), fail(EINVAL);
      std::pair<int, sockaddr_storage> c;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        if (s->pending.empty()) return ::close(fd), fail(EAGAIN);
        c = s->pending.front();
        s->pending.pop_front();
      }
      auto n = std::make_shared<Sock>();
      n->lwip = c.first;
      n->data = fd;
      n->domain = s->domain;
      // LWIPv6 1.5a: accept leaves the address alone and getsockname gives the remote end.
      socklen_t plen = sizeof n->peer;
      if (lwip_getsockname(c.first, reinterpret_cast<sockaddr*>(&n->peer), &plen) < 0) n->peer = c.second;
      n->connected = true;
      n->pumping = n->streaming = true;
      {
        std::lock_guard<std::mutex> lock(s->mu);
        n->local = s->local;
      }
      n->bound = true;
      name_local(&n->local, n->peer);
      c.second = n->peer;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        g_socks[q.id2] = n;
      }
      pump_stream(q.id2, n);
      r.ret = 0;
      r.addr = c.second;
      r.addrlen = len_of(c.second);
      return r;
    }
    case kAddr: case kLink: case kRoute: {
      if (!g_if) return fail(ENODEV);
      if (q.op == kLink) return result(q.a ? lwip_ifup(g_if) : lwip_ifdown(g_if));
      const int family = q.addr.ss_family;
      ip_addr a = to_lwip(q.addr), m = mask_of(family, q.b);
      if (q.op == kAddr) {
        if ((q.a ? lwip_add_addr(g_if, &a, &m) : lwip_del_addr(g_if, &a, &m)) < 0) return fail(errno);
        OwnAddr o{family, q.b, {}};
        if (family == AF_INET) std::memcpy(o.a, &reinterpret_cast<const sockaddr_in*>(&q.addr)->sin_addr, 4);
        else std::memcpy(o.a, &reinterpret_cast<const sockaddr_in6*>(&q.addr)->sin6_addr, 16);
        std::lock_guard<std::mutex> lock(g_addr_mu);
        auto it = std::find_if(g_addrs.begin(), g_addrs.end(), [&](const OwnAddr& x) {
          return x.family == o.family && std::memcmp(x.a, o.a, 16) == 0;
        });
        if (it != g_addrs.end()) g_addrs.erase(it);
        if (q.a) g_addrs.push_back(o);
        return result(0);
      }
      ip_addr gw = to_lwip(q.addr2);
      for (int i = 0; i < 4; ++i) a.addr[i] &= m.addr[i];
      return result(q.a ? lwip_add_route(g_stack, &a, &m, &gw, g_if, 0)
                        : lwip_del_route(g_stack, &a, &m, &gw, g_if, 0));
    }
    default: break;
  }
  auto s = find(q.id);
  if (!s) return fail(EBADF);
  const auto* addr = reinterpret_cast<const sockaddr*>(&q.addr);
  switch (q.op) {
    case kBind: {
      if (s->type == SOCK_DGRAM) {
        if (s->bound) return fail(EINVAL);
        if (int e = bind_port(*s, q.addr)) return fail(e);
      } else {
        if (s->bound) return fail(EINVAL);
        if (int e = bind_port(*s, q.addr)) return fail(e);
      }
      receive(s);
      return result(0);
    }
    case kListen: {
      if (lwip_listen(s->lwip, q.a) < 0) return fail(errno);
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->pumping) s->pumping = true, pump_listen(q.id, s);
      return result(0);
    }
    case kConnect: {
      if (int e = autobind(*s)) return fail(e);
      if (lwip_connect(s->lwip, addr, q.addrlen) < 0) {
        // A reset while connecting is a refusal (Linux: ECONNREFUSED).
        const int e = errno == ECONNRESET ? ECONNREFUSED : errno;
        // A non-blocking connect's caller may already write: it reads end-of-file instead.
        if (q.c) ::shutdown(s->data, SHUT_RDWR);
        return fail(e);
      }
      receive(s);
      std::lock_guard<std::mutex> lock(s->mu);
      s->peer = q.addr;
      s->connected = true;
      name_local(&s->local, s->peer);
      if (s->type == SOCK_STREAM && !s->pumping) s->pumping = s->streaming = true, pump_stream(q.id, s);
      return result(0);
    }
    case kName: {
      {
        std::lock_guard<std::mutex> lock(s->mu);
        if (q.a && !s->connected) return fail(ENOTCONN);
        r.ret = 0;
        r.addr = q.a ? s->peer : s->local;
        if (!q.a && !s->bound) r.addr.ss_family = static_cast<sa_family_t>(s->domain);
        r.addrlen = len_of(r.addr);
        return r;
      }
      socklen_t len = sizeof r.addr;
      long v = q.a ? lwip_getpeername(s->lwip, reinterpret_cast<sockaddr*>(&r.addr), &len)
                   : lwip_getsockname(s->lwip, reinterpret_cast<sockaddr*>(&r.addr), &len);
      r.addrlen = len;
      return result(v);
    }
    case kSendTo: {
      if (int e = autobind(*s)) return fail(e);
      long n = lwip_sendto(s->lwip, payload, static_cast<int>(q.len), 0, addr, q.addrlen);
      if (n < 0) return fail(errno);
      receive(s);
      return result(n);
    }
    case kRecvAddr: {
      const uint64_t h = q.id2;
      std::lock_guard<std::mutex> lock(s->mu);
      if (q.c) {  // MSG_PEEK: the datagram stays, and so does its sender
        for (const Datagram& d : s->senders)
          if (d.hash == h) {
            r.ret = 0;
            r.addr = d.from;
            r.addrlen = d.len;
            return r;
          }
        return fail(ENOENT);
      }
      // Datagrams the view read without asking for the sender are passed over.
      while (!s->senders.empty()) {
        Datagram d = s->senders.front();
        s->senders.pop_front();
        if (d.hash == h) {
          r.ret = 0;
          r.addr = d.from;
          r.addrlen = d.len;
          return r;
        }
      }
      return fail(ENOENT);
    }
    case kSetOpt: {
      int v = q.c;
      return result(lwip_setsockopt(s->lwip, q.a, q.b, &v, sizeof v));
    }
    case kGetOpt: {
      int v = 0;
      socklen_t len = sizeof v;
      if (lwip_getsockopt(s->lwip, q.a, q.b, &v, &len) < 0) return fail(errno);
      return result(v);
    }
    default: return fail(ENOSYS);
  }
}

void reply(int rfd, const VsRep& r) {
  (void)::send(rfd, &r, sizeof r, MSG_NOSIGNAL);
  ::close(rfd);
}

}  // namespace

int main(int argc, char** argv) {
  // No PDEATHSIG: when vu ends, the channel's end-of-file says so, and what LWIPv6 still has
  // to send is sent first (below).
  ::signal(SIGPIPE, SIG_IGN);
  if (argc != 2) {
    std::fprintf(stderr, "usage: vu-vstack VNL (started by vu, with its channel on fd 3)\n");
    return 2;
  }
  const int ch = 3;
  g_debug = std::getenv("VU_VSTACK_DEBUG") != nullptr;
  if (::fcntl(ch, F_GETFD) < 0) return 2;
  ::fcntl(ch, F_SETFD, FD_CLOEXEC);
  g_stack = lwip_stack_new();
  if (!g_stack) {
    std::fprintf(stderr, "vu-vstack: cannot start the TCP/IP stack\n");
    return 1;
  }
  errno = 0;
  g_if = lwip_vdeif_add(g_stack, argv[1]);
  if (!g_if) {
    std::fprintf(stderr, "vu-vstack: cannot plug into %s%s%s\n", argv[1], errno ? ": " : "", errno ? std::strerror(errno) : "");
    return 1;
  }
  std::vector<char> buf(sizeof(VsReq) + kMaxPayload);
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(2 * sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = ::recvmsg(ch, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // vu is gone (ended or killed: the kernel closed its end)
    int fds[2] = {-1, -1};
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        std::memcpy(fds, CMSG_DATA(c), std::min<size_t>(c->cmsg_len - CMSG_LEN(0), sizeof fds));
    if (fds[0] < 0 || static_cast<size_t>(n) < sizeof(VsReq)) {
      if (fds[0] >= 0) ::close(fds[0]);
      if (fds[1] >= 0) ::close(fds[1]);
      continue;
    }
    VsReq q;
    std::memcpy(&q, buf.data(), sizeof q);
    if (q.len > static_cast<size_t>(n) - sizeof q) q.len = static_cast<uint32_t>(static_cast<size_t>(n) - sizeof q);
    if (q.addrlen > sizeof q.addr) q.addrlen = sizeof q.addr;
    const int rfd = fds[0], dfd = fds[1];
    auto run = [](const VsReq& q, const char* payload, int rfd, int dfd) {
      VsRep r = serve(q, payload, dfd);
      if (g_debug)
        std::fprintf(stderr, "vu-vstack: op %u id %llx a %d b %d c %d -> %lld (%s)\n", q.op,
                     static_cast<unsigned long long>(q.id), q.a, q.b, q.c, static_cast<long long>(r.ret),
                     r.ret < 0 ? std::strerror(r.err) : "ok");
      reply(rfd, r);
    };
    if (q.op == kConnect) {  // may wait for the peer: on a thread of its own
      std::thread([q, rfd, run] { run(q, nullptr, rfd, -1); }).detach();
      continue;
    }
    run(q, buf.data() + sizeof q, rfd, dfd);
  }
  // Linger: the view's last process wrote and closed, and vu ended with it, but what LWIPv6 still
  // holds (the end of a transfer, the FINs) has to go out, as a kernel socket's would after its
  // process exits. Until the connections have closed, at most 3 s.
  if (g_debug) std::fprintf(stderr, "vu-vstack: channel closed, lingering\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    bool open = false;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      for (const auto& [id, sk] : g_socks) open = open || sk->streaming;
    }
    if (!open || std::chrono::steady_clock::now() >= deadline) break;
    ::usleep(50 * 1000);
  }
  ::usleep(300 * 1000);  // the last segments and FINs
  if (g_debug) std::fprintf(stderr, "vu-vstack: exit\n");
  ::_exit(0);  // LWIPv6's threads are still running: no destructors
}
