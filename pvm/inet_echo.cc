// pvm/inet_echo.cc — ICMP echo stand-ins, their reflectors, and the sink. Design: pvm/inet_echo.h.
#include "pvm/inet_echo.h"

#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "base/unique_fd.h"

namespace vu::pvm {

namespace {

// An address in either family: 4 or 16 bytes.
struct Ip {
  int family = AF_INET;
  unsigned char b[16] = {};
  bool operator==(const Ip& o) const { return family == o.family && std::memcmp(b, o.b, 16) == 0; }
};

bool ip_of(const sockaddr_storage& ss, unsigned len, Ip* out, uint16_t* port = nullptr) {
  *out = {};
  if (ss.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(out->b, &s->sin_addr, 4);
    if (port) *port = ntohs(s->sin_port);
    return true;
  }
  if (ss.ss_family == AF_INET6 && len >= 24) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      std::memcpy(out->b, s->sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = AF_INET6;
      std::memcpy(out->b, &s->sin6_addr, 16);
    }
    if (port) *port = ntohs(s->sin6_port);
    return true;
  }
  return false;
}

// The address (port `port`) as a socket of `family` names it.
socklen_t put(const Ip& a, uint16_t port, int family, sockaddr_storage* out) {
  *out = {};
  if (family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(out);
    s->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, a.b, 4);
    s->sin_port = htons(port);
    return sizeof(sockaddr_in);
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(out);
  s->sin6_family = AF_INET6;
  if (a.family == AF_INET) {
    s->sin6_addr.s6_addr[10] = s->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(s->sin6_addr.s6_addr + 12, a.b, 4);
  } else {
    std::memcpy(&s->sin6_addr, a.b, 16);
  }
  s->sin6_port = htons(port);
  return sizeof(sockaddr_in6);
}

Ip v4(in_addr a) {
  Ip r;
  std::memcpy(r.b, &a, 4);
  return r;
}
Ip v6(const in6_addr& a) {
  Ip r;
  r.family = AF_INET6;
  std::memcpy(r.b, &a, 16);
  return r;
}
Ip loop6() { return v6(in6addr_loopback); }

uint16_t port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  Ip a;
  uint16_t port = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) ip_of(ss, len, &a, &port);
  return port;
}

// Where the monitor's sockets of a family live on the host: the view's private loopback
// address, or the host's ::1 (the host has no other IPv6 loopback address).
Ip home(const NetConfig& n, int family) { return family == AF_INET ? v4(n.priv) : loop6(); }

// A UDP socket of the monitor's bound at home(family), port chosen by the kernel.
UniqueFd bound_udp(const NetConfig& n, int family) {
  UniqueFd s(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return s;
  sockaddr_storage ss;
  socklen_t len = put(home(n, family), 0, family, &ss);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) return UniqueFd();
  return s;
}

uint16_t checksum(const void* data, size_t len, uint32_t sum = 0) {
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
uint32_t partial(const void* data, size_t len) {
  auto* p = static_cast<const unsigned char*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  return sum;
}

constexpr size_t kMaxReflectors = 64;  // 127/8 has many addresses: the oldest go
constexpr size_t kMaxSockets = 65536;  // inodes of sockets long closed: forgotten in bulk

}  // namespace

struct EchoState {
  std::mutex mu;
  std::set<uint64_t> standins;  // the stand-ins' inodes
  struct Reflector {
    Ip target;  // the view's address it answers for
    int ttl;
    UniqueFd fd;
    uint16_t port;
  };
  std::vector<Reflector> reflectors;
  in_addr priv{};  // the view's private loopback address: where the reflectors are bound
  // Outside addresses where the host lets vu's user have ICMP datagram sockets (as libslirp
  // then does): one of the host's per stand-in, its answers relayed to the stand-in.
  struct Outside {
    uint64_t standin;
    UniqueFd icmp;
    sockaddr_storage to;  // the stand-in's own address
    socklen_t tolen;
  };
  std::vector<Outside> outside;
  bool host_refuses[2] = {};  // AF_INET, AF_INET6: ping_group_range shuts the user out
  UniqueFd ep;                // epoll of the outside sockets, served by the relay thread
  UniqueFd sink[2];  // AF_INET, AF_INET6
  uint16_t sink_port[2] = {};
  std::map<uint64_t, std::pair<sockaddr_storage, socklen_t>> peers;  // connected to the sink
};

std::shared_ptr<EchoState> make_echo_state(in_addr priv) {
  auto st = std::make_shared<EchoState>();
  st->priv = priv;
  return st;
}

namespace {

// The reflector answering for `target` with `ttl` (made on first use). Under st.mu. -1: errno.
int reflector(EchoState& st, const Ip& target, int ttl) {
  for (EchoState::Reflector& r : st.reflectors) {
    if (!(r.target == target)) continue;
    if (r.ttl != ttl) {  // an outside host's answers come with their own TTL
      if (target.family == AF_INET ? ::setsockopt(r.fd.get(), IPPROTO_IP, IP_TTL, &ttl, sizeof ttl)
                                   : ::setsockopt(r.fd.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl))
        return -1;
      r.ttl = ttl;
    }
    return r.fd.get();
  }
  UniqueFd r(::socket(target.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!r) return -1;
  sockaddr_storage ss;
  socklen_t len = put(target.family == AF_INET ? v4(st.priv) : loop6(), 0, target.family, &ss);
  if (::bind(r.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0) return -1;
  if (target.family == AF_INET ? ::setsockopt(r.get(), IPPROTO_IP, IP_TTL, &ttl, sizeof ttl)
                               : ::setsockopt(r.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl))
    return -1;
  if (st.reflectors.size() >= kMaxReflectors) st.reflectors.erase(st.reflectors.begin());
  const int fd = r.get();
  st.reflectors.push_back({target, ttl, std::move(r), port_of(fd)});
  return fd;
}

// The relay: answers from outside on the host's ICMP sockets, passed to their stand-ins by the
// reflector of the address that answered (TTL 255, as libslirp reflects them). Lives as long as
// vu (as the rtnetlink server).
void* relay_main(void* arg) {
  std::unique_ptr<std::shared_ptr<EchoState>> hold(static_cast<std::shared_ptr<EchoState>*>(arg));
  EchoState& st = **hold;
  sigset_t mask;
  sigfillset(&mask);
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  std::vector<unsigned char> buf(65536);
  for (;;) {
    epoll_event ev[16];
    int k = ::epoll_wait(st.ep.get(), ev, 16, -1);
    for (int i = 0; i < k; ++i) {
      for (;;) {
        // Under the lock, and only while the socket is still one of ours: an entry dropped
        // (kMaxReflectors) closes its socket, and its number may by now be another socket of the
        // monitor's (a view's socket taken for a call), whose datagram must not be read here.
        // Nothing here waits (MSG_DONTWAIT).
        std::lock_guard<std::mutex> lock(st.mu);
        const EchoState::Outside* o = nullptr;
        for (const EchoState::Outside& x : st.outside)
          if (x.icmp.get() == ev[i].data.fd) o = &x;
        if (!o) break;
        sockaddr_storage from{};
        iovec v{buf.data(), buf.size()};
        msghdr m{};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &v;
        m.msg_iovlen = 1;
        ssize_t got = ::recvmsg(o->icmp.get(), &m, MSG_DONTWAIT);
        if (got < 0) break;
        const int ttl = 255;  // libslirp's icmp_receive answers the view with icmp_reflect's MAXTTL
        Ip who;
        if (!ip_of(from, m.msg_namelen, &who)) continue;
        const int rfd = reflector(st, who, ttl);
        if (rfd >= 0)
          (void)::sendto(rfd, buf.data(), static_cast<size_t>(got), MSG_DONTWAIT,
                         reinterpret_cast<const sockaddr*>(&o->to), o->tolen);
      }
    }
    if (k < 0 && errno != EINTR) return nullptr;
  }
}

}  // namespace

// An echo request to an outside address: sent on the host's ICMP datagram socket kept for the
// stand-in, where the host gives vu's user one (net.ipv4.ping_group_range); else dropped.
static void outside(const NetConfig& n, int fd, uint64_t ino, int family, const sockaddr_storage& dest, unsigned len,
             const std::vector<char>& data) {
  EchoState& st = *n.echo;
  std::lock_guard<std::mutex> lock(st.mu);
  const int k = family == AF_INET ? 0 : 1;
  if (st.host_refuses[k]) return;
  int icmp = -1;
  for (const EchoState::Outside& o : st.outside)
    if (o.standin == ino) icmp = o.icmp.get();
  if (icmp < 0) {
    UniqueFd s(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6}));
    if (!s) {
      st.host_refuses[k] = true;  // ping_group_range (EACCES), or no ping sockets in this kernel
      return;
    }
    if (!st.ep) {
      UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
      if (!ep) return;
      st.ep = std::move(ep);
      pthread_t t;
      auto* arg = new std::shared_ptr<EchoState>(n.echo);
      const int rc = start_masked_thread(&t, relay_main, arg, 256 * 1024);
      if (rc) {
        delete arg;
        st.ep.reset();
        return;
      }
      ::pthread_detach(t);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s.get();
    if (::epoll_ctl(st.ep.get(), EPOLL_CTL_ADD, s.get(), &ev) < 0) return;
    EchoState::Outside o{ino, std::move(s), {}, sizeof(sockaddr_storage)};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&o.to), &o.tolen) < 0) return;
    if (st.outside.size() >= kMaxReflectors) st.outside.erase(st.outside.begin());  // (epoll forgets it when closed)
    icmp = o.icmp.get();
    st.outside.push_back(std::move(o));
  }
  (void)::sendto(icmp, data.data(), data.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&dest), len);
}

bool echo_socket(const NetConfig& n, Call& c, Answer* out) {
  const int family = c.arg_int(0), type = c.arg_int(1), proto = c.arg_int(2);
  if ((type & 0xf) != SOCK_DGRAM || !n.echo) return false;
  if (!((family == AF_INET && proto == IPPROTO_ICMP) || (family == AF_INET6 && proto == IPPROTO_ICMPV6))) return false;
  if (n.kind != NetConfig::kSlirp && n.kind != NetConfig::kNone) return false;
  if (type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) return *out = Answer::error(EINVAL), true;
  UniqueFd s = bound_udp(n, family);
  if (!s) return *out = Answer::error(errno == EADDRNOTAVAIL ? EAFNOSUPPORT : errno), true;
  if ((type & SOCK_NONBLOCK) && ::fcntl(s.get(), F_SETFL, O_NONBLOCK) < 0)
    return *out = Answer::error(errno), true;
  {
    std::lock_guard<std::mutex> lock(n.echo->mu);
    if (n.echo->standins.size() > kMaxSockets) n.echo->standins.clear();
    n.echo->standins.insert(inode_of(s.get()));
  }
  Answer a;
  a.kind = Answer::kFd;
  a.fd = std::move(s);
  a.cloexec = (type & SOCK_CLOEXEC) != 0;
  return *out = std::move(a), true;
}

bool echo_is(const NetConfig& n, uint64_t ino) {
  if (!n.echo) return false;
  std::lock_guard<std::mutex> lock(n.echo->mu);
  return n.echo->standins.count(ino) != 0;
}

Answer echo_send(const NetConfig& n, int fd, uint64_t ino, int family, const sockaddr_storage& dest, unsigned len,
                 const std::vector<char>& data) {
  Ip d;
  if (!ip_of(dest, len, &d)) return Answer::error(len < sizeof(sockaddr_in) ? EINVAL : EAFNOSUPPORT);
  if (d.family != family) return Answer::error(family == AF_INET ? EAFNOSUPPORT : EINVAL);
  const bool is4 = family == AF_INET;
  // The kernel's ping socket takes echo requests only.
  if (data.size() < 8 || static_cast<unsigned char>(data[0]) != (is4 ? ICMP_ECHO : ICMP6_ECHO_REQUEST) || data[1] != 0)
    return Answer::error(EINVAL);
  // Longer than an IP datagram can carry: the ping socket's EMSGSIZE (ip_append_data, ping_common_sendmsg).
  if (data.size() > (is4 ? 65535u - 20 : 65535u)) return Answer::error(EMSGSIZE);
  const bool slirp = n.kind == NetConfig::kSlirp;
  int ttl = 0;
  Ip src;  // the view's own address the request goes out from (ICMPv6's checksum)
  if (is4) {
    in_addr a;
    std::memcpy(&a, d.b, 4);
    const uint32_t h = ntohl(a.s_addr);
    if ((h >> 24) == 127 || h == 0 || (slirp && a.s_addr == n.addr.s_addr)) ttl = 64;
    else if (slirp && (a.s_addr == n.gateway.s_addr || a.s_addr == n.dns.s_addr)) ttl = 255;
    else if (!slirp) return Answer::error(ENETUNREACH);
  } else {
    in6_addr a;
    std::memcpy(&a, d.b, 16);
    if (IN6_IS_ADDR_LOOPBACK(&a) || (slirp && IN6_ARE_ADDR_EQUAL(&a, &n.addr6))) ttl = 64, src = d;
    else if (slirp && (IN6_ARE_ADDR_EQUAL(&a, &n.gateway6) || IN6_ARE_ADDR_EQUAL(&a, &n.dns6))) ttl = 255, src = v6(n.addr6);
    else if (!slirp) return Answer::error(ENETUNREACH);
  }
  if (!ttl) {  // out to the world: through the host's ICMP socket where it has one for us
    outside(n, fd, ino, family, dest, len, data);
    return Answer::value(static_cast<int64_t>(data.size()));
  }
  // The reply goes to the stand-in's own name; its port is the echo id (as a ping socket's).
  sockaddr_storage to{};
  socklen_t tolen = sizeof to;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&to), &tolen) < 0) return Answer::error(errno);
  Ip self;
  uint16_t id = 0;
  ip_of(to, tolen, &self, &id);
  std::vector<unsigned char> reply(data.begin(), data.end());
  reply[0] = is4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
  reply[4] = static_cast<unsigned char>(id >> 8);
  reply[5] = static_cast<unsigned char>(id);
  reply[2] = reply[3] = 0;
  uint16_t sum;
  if (is4) {
    sum = checksum(reply.data(), reply.size());
  } else {  // over the pseudo-header: from the address pinged to the view's own
    const uint32_t l = static_cast<uint32_t>(reply.size());
    unsigned char tail[8] = {static_cast<unsigned char>(l >> 24), static_cast<unsigned char>(l >> 16),
                             static_cast<unsigned char>(l >> 8), static_cast<unsigned char>(l), 0, 0, 0, IPPROTO_ICMPV6};
    sum = checksum(reply.data(), reply.size(), partial(d.b, 16) + partial(src.b, 16) + partial(tail, 8));
  }
  reply[2] = static_cast<unsigned char>(sum >> 8);
  reply[3] = static_cast<unsigned char>(sum);
  EchoState& st = *n.echo;
  std::lock_guard<std::mutex> lock(st.mu);
  const int rfd = reflector(st, d, ttl);
  if (rfd < 0) return Answer::error(errno);
  // A full receive queue drops the answer, as a ping socket's would.
  (void)::sendto(rfd, reply.data(), reply.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), tolen);
  return Answer::value(static_cast<int64_t>(data.size()));
}

bool echo_from(const NetConfig& n, sockaddr_storage* from, socklen_t* len) {
  Ip a;
  uint16_t port = 0;
  if (!n.echo || !ip_of(*from, *len, &a, &port)) return false;
  std::lock_guard<std::mutex> lock(n.echo->mu);
  for (const EchoState::Reflector& r : n.echo->reflectors) {
    if (r.port != port || !(a == home(n, r.target.family))) continue;
    *len = put(r.target, 0, from->ss_family, from);
    return true;
  }
  return false;
}

int echo_sink_connect(const NetConfig& n, int fd, int family, bool v6only, uint64_t ino, const sockaddr_storage& dest,
                      unsigned len) {
  Ip d;
  if (n.kind != NetConfig::kSlirp || !n.echo || !ip_of(dest, len, &d)) return -1;
  if (d.family == AF_INET) {
    in_addr a;
    std::memcpy(&a, d.b, 4);
    const uint32_t mask = n.prefix ? ~uint32_t{0} << (32 - n.prefix) : 0;
    if ((ntohl(a.s_addr) & mask) != (ntohl(n.addr.s_addr) & mask) || v6only) return -1;
  } else if (std::memcmp(d.b, &n.addr6, 8) != 0) {  // fd00::/64
    return -1;
  }
  EchoState& st = *n.echo;
  const int k = d.family == AF_INET ? 0 : 1;
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.sink[k]) {
    st.sink[k] = bound_udp(n, d.family);
    if (!st.sink[k]) return errno;
    int small = 1;  // what arrives is dropped: the least buffer
    (void)::setsockopt(st.sink[k].get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    st.sink_port[k] = port_of(st.sink[k].get());
  }
  sockaddr_storage to;
  socklen_t tolen = put(home(n, d.family), st.sink_port[k], family, &to);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), tolen) < 0) return errno;
  if (st.peers.size() > kMaxSockets) st.peers.clear();
  sockaddr_storage view{};
  std::memcpy(&view, &dest, std::min<size_t>(len, sizeof view));
  st.peers[ino] = {view, static_cast<socklen_t>(std::min<size_t>(len, sizeof view))};
  return 0;
}

bool echo_peer(const NetConfig& n, uint64_t ino, sockaddr_storage* out, socklen_t* len) {
  if (!n.echo) return false;
  std::lock_guard<std::mutex> lock(n.echo->mu);
  auto it = n.echo->peers.find(ino);
  if (it == n.echo->peers.end()) return false;
  *out = it->second.first;
  *len = it->second.second;
  return true;
}

void echo_forget(const NetConfig& n, uint64_t ino) {
  if (!n.echo) return;
  std::lock_guard<std::mutex> lock(n.echo->mu);
  n.echo->peers.erase(ino);
}

}  // namespace vu::pvm
