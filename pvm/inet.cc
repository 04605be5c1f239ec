// pvm/inet.cc — the view's network on the pvm backend: address translation on the trapped
// socket calls, forwarded ports, and the rtnetlink emulation. The design is in pvm/inet.h.
#include "pvm/inet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_arp.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "pvm/call.h"
#include "pvm/compat.h"
#include "pvm/inet_echo.h"
#include "pvm/net.h"
#include "pvm/nlmsg.h"
#include "pvm/vstack.h"
#include "pvm/vstack_proto.h"

namespace vu::pvm {

// ---- state shared by the workers -----------------------------------------------------------

struct NetState {
  std::mutex mu;
  // What the view bound each socket to (keyed by the socket's inode), for getsockname of an
  // unconnected socket: the host's 127.X.Y.Z stands for several view addresses.
  std::map<uint64_t, sockaddr_in6> bound;
  std::set<uint64_t> netlink;  // the view's rtnetlink sockets (NETLINK_USERSOCK stand-ins)
  std::vector<UniqueFd> reserved;  // per forward: the held host port, until the view binds
  // The rtnetlink server: a NETLINK_USERSOCK socket of vu's, and the thread answering on it.
  UniqueFd server;
  uint32_t server_port = 0;
  pthread_t thread{};
  bool started = false;
  NetConfig cfg;  // a copy for the server (without `state`), made when it starts
  std::set<uint32_t> ports;  // the view's rtnetlink sockets' port ids: the only senders served
  // A VDE view's interfaces (kVde), which the view changes with ip addr/link/route (each change
  // also given to its stack, pvm/vstack.h); the server thread's alone once it runs.
  struct IfAddr {
    int family, index, prefix;
    unsigned char addr[16];
    bool brd = false;  // IPv4: a broadcast address was given (--ip, ip addr add … brd +)
    unsigned char bcast[4] = {};
  };
  struct StaticRoute {
    int family, dst_len;
    unsigned char dst[16], gw[16];
    int oif = 2;        // the interface's index
    uint32_t prio = 0;  // 0: the kernel's default (none for IPv4, 1024 for IPv6)
  };
  struct Model {
    // By index: [0] unused, lo 1, vde0 2, vde1 3, … (one vde0 but in stack mode, pvm/vstack.h)
    std::vector<bool> up = {false, true, true};
    std::vector<int> mtu = {0, 65536, 1500};
    std::vector<std::array<unsigned char, 6>> mac = {{}, {}, {}};
    std::vector<IfAddr> addrs;
    std::vector<StaticRoute> routes;
    int last() const { return static_cast<int>(up.size()) - 1; }  // the highest index
  } model;
  // The server thread holds the state (a shared_ptr) and lives as long as vu: a view that made
  // an rtnetlink socket may still use it until the end.
};

uint64_t inode_of(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

namespace {

constexpr unsigned kIn4 = sizeof(sockaddr_in), kIn6 = sizeof(sockaddr_in6);

bool in_loop(in_addr a) { return (ntohl(a.s_addr) >> 24) == 127; }
bool same(in_addr a, in_addr b) { return a.s_addr == b.s_addr; }
bool same6(const in6_addr& a, const in6_addr& b) { return std::memcmp(&a, &b, 16) == 0; }
bool in_net(const NetConfig& n, in_addr a) {
  uint32_t mask = n.prefix ? ~uint32_t{0} << (32 - n.prefix) : 0;
  return (ntohl(a.s_addr) & mask) == (ntohl(n.addr.s_addr) & mask);
}
bool in_net6(const NetConfig& n, const in6_addr& a) { return std::memcmp(&a, &n.addr6, 8) == 0; }  // /64
in6_addr loop6() { return IN6ADDR_LOOPBACK_INIT; }
bool mapped4(const in6_addr& a) { return IN6_IS_ADDR_V4MAPPED(&a); }
in_addr v4_of(const in6_addr& a) {
  in_addr r;
  std::memcpy(&r, a.s6_addr + 12, 4);
  return r;
}
in6_addr mapped_of(in_addr a) {
  in6_addr r{};
  r.s6_addr[10] = r.s6_addr[11] = 0xff;
  std::memcpy(r.s6_addr + 12, &a, 4);
  return r;
}
in_addr v4(const char* s) {
  in_addr a{};
  ::inet_pton(AF_INET, s, &a);
  return a;
}

// An address in either family, as a family-neutral pair.
struct Addr {
  bool is4 = true;
  in_addr a4{};
  in6_addr a6{};
  uint16_t port = 0;  // host order
};
bool parse(const void* p, unsigned len, Addr* out) {
  sa_family_t fam;
  if (len < sizeof fam) return false;
  std::memcpy(&fam, p, sizeof fam);
  if (fam == AF_INET && len >= kIn4) {
    sockaddr_in s;
    std::memcpy(&s, p, kIn4);
    *out = {true, s.sin_addr, {}, ntohs(s.sin_port)};
    return true;
  }
  if (fam == AF_INET6 && len >= 24) {  // SIN6_LEN_RFC2133: without sin6_scope_id
    sockaddr_in6 s{};
    std::memcpy(&s, p, std::min(len, kIn6));
    if (mapped4(s.sin6_addr)) *out = {true, v4_of(s.sin6_addr), {}, ntohs(s.sin6_port)};
    else *out = {false, {}, s.sin6_addr, ntohs(s.sin6_port)};
    return true;
  }
  return false;
}
// The address in the socket's family (an IPv4 address on an AF_INET6 socket: v4-mapped).
void put(const Addr& a, int family, sockaddr_in6* out, unsigned* len) {
  *out = {};
  if (family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(out);
    s->sin_family = AF_INET;
    s->sin_addr = a.a4;
    s->sin_port = htons(a.port);
    *len = kIn4;
  } else {
    out->sin6_family = AF_INET6;
    out->sin6_addr = a.is4 ? mapped_of(a.a4) : a.a6;
    out->sin6_port = htons(a.port);
    *len = kIn6;
  }
}
Mapping error(int e) {
  Mapping m;
  m.route = Route::kError;
  m.err = e;
  return m;
}
Mapping mapped(const Addr& a, int family, bool own = false) {
  Mapping m;
  m.route = Route::kMapped;
  m.own = own;
  put(a, family, &m.host, &m.len);
  return m;
}

}  // namespace

// ---- translation ---------------------------------------------------------------------------

Mapping map_dest(const NetConfig& n, const void* p, unsigned len, int family, bool v6only, int type) {
  Addr a;
  if (n.kind == NetConfig::kHost || !parse(p, len, &a)) return {};
  const bool slirp = n.kind == NetConfig::kSlirp;
  // The view's own forwarded port: its socket is bound at the forward's host address.
  if (type && (a.is4 ? (in_loop(a.a4) || a.a4.s_addr == INADDR_ANY || same(a.a4, n.addr))
                     : (same6(a.a6, loop6()) || same6(a.a6, n.addr6)))) {
    for (const NetConfig::Forward& f : n.forwards)
      if (f.view_port == a.port && f.udp == (type == SOCK_DGRAM) && (family == AF_INET6 || !f.v6))
        return f.v6 ? mapped({false, {}, f.host_addr6, static_cast<uint16_t>(f.host_port)}, family)
                    : mapped({true, f.host_addr, {}, static_cast<uint16_t>(f.host_port)}, family, true);
  }
  if (a.is4) {
    if (in_loop(a.a4) || a.a4.s_addr == INADDR_ANY || (slirp && same(a.a4, n.addr)))
      return mapped({true, n.priv, {}, a.port}, family, true);
    if (!slirp) return error(ENETUNREACH);
    if (same(a.a4, n.gateway)) {
      if (!n.allow_host_loopback) return error(ENETUNREACH);
      return mapped({true, v4("127.0.0.1"), {}, a.port}, family);
    }
    if (same(a.a4, n.dns)) {
      if (a.port != 53 || !n.have_host_dns) return error(ECONNREFUSED);
      return mapped({true, n.host_dns, {}, 53}, family);
    }
    if (in_net(n, a.a4)) return error(EHOSTUNREACH);
    return {};
  }
  if (family != AF_INET6) return error(EAFNOSUPPORT);
  if (same6(a.a6, loop6()) || IN6_IS_ADDR_UNSPECIFIED(&a.a6) || (slirp && same6(a.a6, n.addr6)))
    return v6only ? mapped({false, {}, loop6(), a.port}, family, true) : mapped({true, n.priv, {}, a.port}, family, true);
  if (!slirp) return error(ENETUNREACH);
  if (same6(a.a6, n.gateway6)) {
    if (!n.allow_host_loopback) return error(ENETUNREACH);
    return mapped({false, {}, loop6(), a.port}, family);
  }
  if (same6(a.a6, n.dns6)) {
    if (a.port != 53 || !n.have_host_dns) return error(ECONNREFUSED);
    return mapped({true, n.host_dns, {}, 53}, family);
  }
  if (in_net6(n, a.a6)) return error(EHOSTUNREACH);
  if (IN6_IS_ADDR_LINKLOCAL(&a.a6) || IN6_IS_ADDR_LOOPBACK(&a.a6)) return error(ENETUNREACH);
  return {};
}

Mapping map_bind(const NetConfig& n, const void* p, unsigned len, int family, int type, bool v6only) {
  Addr a;
  if (n.kind == NetConfig::kHost || !parse(p, len, &a)) return {};
  const bool slirp = n.kind == NetConfig::kSlirp;
  const bool any = a.is4 ? a.a4.s_addr == INADDR_ANY : IN6_IS_ADDR_UNSPECIFIED(&a.a6);
  const bool own_ext = slirp && (a.is4 ? same(a.a4, n.addr) : same6(a.a6, n.addr6));
  const bool own = any || own_ext || (a.is4 ? in_loop(a.a4) : same6(a.a6, loop6()));
  if (!own) return error(EADDRNOTAVAIL);
  if ((any || own_ext) && a.port) {
    for (size_t i = 0; i < n.forwards.size(); ++i) {
      const NetConfig::Forward& f = n.forwards[i];
      if (f.view_port != a.port || f.udp != (type == SOCK_DGRAM)) continue;
      if (f.v6 && family != AF_INET6) continue;
      Mapping m = f.v6 ? mapped({false, {}, f.host_addr6, static_cast<uint16_t>(f.host_port)}, family)
                       : mapped({true, f.host_addr, {}, static_cast<uint16_t>(f.host_port)}, family);
      m.err = -1 - static_cast<int>(i);  // which forward (the handler gives up its reservation)
      return m;
    }
  }
  // A datagram socket bound to the wildcard with port 0 is a client choosing its source port
  // (Java's DatagramSocket, resolvers) that then sends anywhere: it gets the host's wildcard (on
  // 127.X.Y.Z it could not reach the world; the view's own datagrams to it still arrive, the
  // wildcard covering 127.X.Y.Z). A stream socket so bound is far more often a server on an
  // ephemeral port, kept private.
  if (any && !a.port && type == SOCK_DGRAM) return mapped(a, family);
  if (v6only && !a.is4) return mapped({false, {}, loop6(), a.port}, family);
  return mapped({true, n.priv, {}, a.port}, family);
}

void map_back(const NetConfig& n, void* p, unsigned* len, bool local, bool v6only) {
  Addr a;
  if (n.kind == NetConfig::kHost || !parse(p, *len, &a)) return;
  sa_family_t fam;
  std::memcpy(&fam, p, sizeof fam);
  const bool slirp = n.kind == NetConfig::kSlirp;
  Addr v = a;
  if (a.is4) {
    if (same(a.a4, n.priv)) {
      // The view's loopback: 127.0.0.1, or ::1 on an IPv6 socket (where a v4-mapped address
      // of the view's own is far more likely a ::1 the view used than a 127.0.0.1).
      if (fam == AF_INET6) v = {false, {}, loop6(), a.port};
      else v.a4 = v4("127.0.0.1");
    } else if (!local && n.have_host_dns && same(a.a4, n.host_dns) && a.port == 53) {
      v.a4 = n.dns;
    } else if (in_loop(a.a4)) {
      if (local) {
        v.a4 = n.addr;
        for (const NetConfig::Forward& f : n.forwards)
          if (!f.v6 && same(f.host_addr, a.a4) && f.host_port == a.port) v.port = static_cast<uint16_t>(f.view_port);
      } else {
        v.a4 = n.gateway;
      }
    } else if (local && a.a4.s_addr != INADDR_ANY && slirp) {
      v.a4 = n.addr;  // the host's own address the socket went out from
    }
  } else {
    if (same6(a.a6, loop6()) && v6only) {
      // An IPV6_V6ONLY socket cannot use the private v4-mapped loopback: its ::1 is the host's.
    } else if (same6(a.a6, loop6())) {
      if (local) {
        v.a6 = n.addr6;
        for (const NetConfig::Forward& f : n.forwards)
          if (f.v6 && same6(f.host_addr6, a.a6) && f.host_port == a.port) v.port = static_cast<uint16_t>(f.view_port);
      } else {
        v.a6 = n.gateway6;
      }
    } else if (local && !IN6_IS_ADDR_UNSPECIFIED(&a.a6) && slirp) {
      v.a6 = n.addr6;
    }
  }
  sockaddr_in6 out;
  unsigned olen;
  put(v, fam, &out, &olen);
  if (fam == AF_INET6) out.sin6_scope_id = 0;
  std::memcpy(p, &out, olen);
  *len = olen;
}

// ---- set-up --------------------------------------------------------------------------------

namespace {
// A VDE view's interfaces at start: --ip on vde0, --gw the default route, both up; vdens: down
// and empty. Given to the stack as to the model.
std::string vde_setup(NetConfig& n) {
  NetState::Model& m = n.state->model;
  if (n.links.empty()) {  // one VDE network: vde0
    NetConfig::Link l;
    l.addr = n.addr, l.prefix = n.prefix, l.mtu = n.mtu;
    n.links.push_back(l);
  }
  const int count = static_cast<int>(n.links.size());
  m.up.assign(static_cast<size_t>(count) + 2, n.configure);
  m.mtu.assign(static_cast<size_t>(count) + 2, 0);
  m.mac.assign(static_cast<size_t>(count) + 2, {});
  m.up[0] = false;
  m.mtu[1] = 65536;
  if (!n.vstack) return "no VDE stack";
  for (int i = 0; i < count; ++i) {
    NetConfig::Link& l = n.links[static_cast<size_t>(i)];
    const std::string name = "vde" + std::to_string(i);
    if (i == 0) std::memcpy(l.mac, n.mac, 6);
    else if (::getrandom(l.mac, 6, 0) != 6) std::memcpy(l.mac, n.mac, 6), l.mac[5] ^= static_cast<unsigned char>(i);
    l.mac[0] = (l.mac[0] & 0xfe) | 0x02;  // unicast, locally administered
    std::memcpy(m.mac[static_cast<size_t>(i) + 2].data(), l.mac, 6);
    m.mtu[static_cast<size_t>(i) + 2] = l.mtu;
    if (int e = vstack_mac(*n.vstack, l.mac, i)) return name + " MAC: " + std::strerror(e);
    if (count > 1 || l.slirp)
      if (int e = vstack_mtu(*n.vstack, l.mtu, i)) return name + " MTU: " + std::strerror(e);
    if (!n.configure) continue;
    if (int e = vstack_link(*n.vstack, true, i)) return name + " up: " + std::strerror(e);
    if (l.addr.s_addr) {
      NetState::IfAddr a{AF_INET, i + 2, l.prefix, {}};
      std::memcpy(a.addr, &l.addr, 4);
      uint32_t mask = l.prefix ? ~uint32_t{0} << (32 - l.prefix) : 0;
      in_addr bc{htonl((ntohl(l.addr.s_addr) & mask) | ~mask)};
      a.brd = l.prefix < 31;
      std::memcpy(a.bcast, &bc, 4);
      m.addrs.push_back(a);
      if (int e = vstack_addr(*n.vstack, true, AF_INET, &l.addr, l.prefix, i))
        return name + " address: " + std::strerror(e);
      if (i == 0) n.addr = l.addr, n.prefix = l.prefix;
    }
    // The first interface, when slirp's, gets slirp's IPv6 address and default route (as ns).
    if (l.slirp && i == 0) {
      NetState::IfAddr a{AF_INET6, i + 2, 64, {}};
      std::memcpy(a.addr, &n.addr6, 16);
      m.addrs.push_back(a);
      if (int e = vstack_addr(*n.vstack, true, AF_INET6, &n.addr6, 64, i)) return name + " address: " + std::strerror(e);
      NetState::StaticRoute r{AF_INET6, 0, {}, {}, i + 2, 1};
      std::memcpy(r.gw, &n.gateway6, 16);
      m.routes.push_back(r);
      in6_addr any{};
      (void)vstack_route(*n.vstack, true, AF_INET6, &any, 0, &n.gateway6, i);
    }
  }
  if (n.configure && n.gateway.s_addr) {
    // On the interface whose subnet holds the gateway (the kernel's choice on ns).
    int oif = -1;
    for (int i = 0; i < count && oif < 0; ++i) {
      const NetConfig::Link& l = n.links[static_cast<size_t>(i)];
      if (l.addr.s_addr && vs::same_net(reinterpret_cast<const unsigned char*>(&l.addr),
                                        reinterpret_cast<const unsigned char*>(&n.gateway), l.prefix))
        oif = i;
    }
    if (oif < 0) return "add default route via " + std::string(::inet_ntoa(n.gateway)) + ": Network is unreachable";
    NetState::StaticRoute r{AF_INET, 0, {}, {}, oif + 2, 0};
    std::memcpy(r.gw, &n.gateway, 4);
    m.routes.push_back(r);
    in_addr any{};
    if (int e = vstack_route(*n.vstack, true, AF_INET, &any, 0, &n.gateway, oif))
      return std::string("default route: ") + std::strerror(e);
  }
  return {};
}
}  // namespace

std::string net_setup(NetConfig& n, int* failed) {
  n.state = std::make_shared<NetState>();
  if (n.kind == NetConfig::kHost) return {};
  uint8_t rnd[9];
  if (::getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) std::memset(rnd, 0x5a, sizeof rnd);
  // 127.X.Y.Z, X in 64…191 (clear of the 127.0.x.y addresses hosts use: 127.0.0.53, 127.0.1.1),
  // Z never 0 or 255.
  n.priv.s_addr = htonl((127u << 24) | ((64u + rnd[0] % 128) << 16) | (rnd[1] << 8) | (1u + rnd[2] % 254));
  std::memcpy(n.mac, rnd + 3, 6);
  n.mac[0] = (n.mac[0] & 0xfe) | 0x02;  // unicast, locally administered
  if (n.kind == NetConfig::kNone || n.kind == NetConfig::kSlirp) n.echo = make_echo_state(n.priv);  // pvm/inet_echo.h
  if (n.kind == NetConfig::kNone) return {};
  if (n.kind == NetConfig::kVde) return vde_setup(n);
  if (n.bcast.s_addr == 0) {
    uint32_t mask = n.prefix ? ~uint32_t{0} << (32 - n.prefix) : 0;
    n.bcast.s_addr = htonl((ntohl(n.addr.s_addr) & mask) | ~mask);
  }
  // The host's first IPv4 nameserver, behind the view's 10.0.2.3.
  if (FILE* f = std::fopen("/etc/resolv.conf", "re")) {
    char line[512];
    while (!n.have_host_dns && std::fgets(line, sizeof line, f)) {
      char addr[256];
      if (std::sscanf(line, " nameserver %255s", addr) == 1 && ::inet_pton(AF_INET, addr, &n.host_dns) == 1)
        n.have_host_dns = true;
    }
    std::fclose(f);
  }
  for (NetConfig::Forward& f : n.forwards) {
    if (failed) *failed = static_cast<int>(&f - n.forwards.data());
    const int family = f.v6 ? AF_INET6 : AF_INET;
    UniqueFd s(::socket(family, (f.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    if (!s) return std::string("socket: ") + std::strerror(errno);
    Addr a = f.v6 ? Addr{false, {}, f.host_addr6, static_cast<uint16_t>(f.host_port)}
                  : Addr{true, f.host_addr, {}, static_cast<uint16_t>(f.host_port)};
    sockaddr_in6 sa;
    unsigned len;
    put(a, family, &sa, &len);
    // TCP: SO_REUSEADDR, as libslirp's forwards have it: the connections of a view that just
    // ended (TIME_WAIT) do not keep the next one from its port; a listener still does.
    int one = 1;
    if (!f.udp) (void)::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), len) < 0) {
      char text[INET6_ADDRSTRLEN] = "?";
      ::inet_ntop(family, f.v6 ? static_cast<const void*>(&f.host_addr6) : &f.host_addr, text, sizeof text);
      return std::string("listen on ") + text + " port " + std::to_string(f.host_port) + (f.udp ? "/udp" : "/tcp") +
             ": " + std::strerror(errno);
    }
    f.reserved = s.get();
    n.state->reserved.push_back(std::move(s));
  }
  return {};
}

// ---- the rtnetlink emulation ---------------------------------------------------------------

namespace {

constexpr uint32_t kForever = 0xffffffffu;

struct Reply {
  std::vector<char> buf;
  uint32_t seq, pid;
  nlmsghdr* start(uint16_t type, uint16_t flags) {
    size_t off = buf.size();
    buf.resize(off + 4096, 0);  // room; trimmed by end()
    nlmsghdr* h = nlm_nlmsg_put_header(buf.data() + off);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = seq;
    h->nlmsg_pid = pid;
    return h;
  }
  void end(nlmsghdr* h) { buf.resize(static_cast<size_t>(reinterpret_cast<char*>(h) - buf.data()) + h->nlmsg_len); }
  void done() {
    nlmsghdr* h = start(NLMSG_DONE, NLM_F_MULTI);
    int zero = 0;
    std::memcpy(nlm_nlmsg_put_extra_header(h, sizeof zero), &zero, sizeof zero);
    end(h);
  }
  void err(const nlmsghdr* req, int e) {
    nlmsghdr* h = start(NLMSG_ERROR, 0);
    auto* m = static_cast<nlmsgerr*>(nlm_nlmsg_put_extra_header(h, sizeof(nlmsgerr)));
    m->error = -e;
    m->msg = *req;
    end(h);
  }
};

bool slirp_of(const NetConfig& n) { return n.kind == NetConfig::kSlirp; }

bool vde_of(const NetConfig& n) { return n.kind == NetConfig::kVde; }

// An interface's name by index: lo 1, vde0 2, vde1 3…
std::string if_name(int index) { return index == 1 ? "lo" : "vde" + std::to_string(index - 2); }

void put_link(Reply& r, const NetConfig& n, int index, uint16_t flags, bool up = true, int mtu = 0,
              const unsigned char* mac = nullptr) {
  nlmsghdr* h = r.start(RTM_NEWLINK, flags);
  auto* ifi = static_cast<ifinfomsg*>(nlm_nlmsg_put_extra_header(h, sizeof(ifinfomsg)));
  const bool lo = index == 1;
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_type = lo ? ARPHRD_LOOPBACK : ARPHRD_ETHER;
  ifi->ifi_index = index;
  ifi->ifi_flags = (up ? IFF_UP | IFF_RUNNING | IFF_LOWER_UP : 0) | (lo ? IFF_LOOPBACK : IFF_BROADCAST | IFF_MULTICAST);
  ifi->ifi_change = 0;
  nlm_attr_put_strz(h, IFLA_IFNAME, if_name(index).c_str());
  nlm_attr_put_u32(h, IFLA_TXQLEN, 1000);
  nlm_attr_put_u8(h, IFLA_OPERSTATE, up ? IF_OPER_UNKNOWN : IF_OPER_DOWN);
  nlm_attr_put_u8(h, IFLA_LINKMODE, 0);
  nlm_attr_put_u32(h, IFLA_MTU, lo ? 65536 : static_cast<uint32_t>(mtu ? mtu : n.mtu));
  nlm_attr_put_u32(h, IFLA_MIN_MTU, lo ? 0 : 68);
  nlm_attr_put_u32(h, IFLA_MAX_MTU, lo ? 0 : 65521);
  nlm_attr_put_u32(h, IFLA_GROUP, 0);
  nlm_attr_put_u32(h, IFLA_PROMISCUITY, 0);
  nlm_attr_put_u32(h, IFLA_NUM_TX_QUEUES, 1);
  nlm_attr_put_u32(h, IFLA_NUM_RX_QUEUES, 1);
  nlm_attr_put_u8(h, IFLA_CARRIER, 1);
  nlm_attr_put_strz(h, IFLA_QDISC, !up ? "noop" : lo ? "noqueue" : "pfifo_fast");
  static const unsigned char zero[6] = {}, ff[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  nlm_attr_put(h, IFLA_ADDRESS, 6, lo ? zero : mac ? mac : n.mac);
  nlm_attr_put(h, IFLA_BROADCAST, 6, lo ? zero : ff);
  rtnl_link_stats64 st64{};
  nlm_attr_put(h, IFLA_STATS64, sizeof st64, &st64);
  rtnl_link_stats st{};
  nlm_attr_put(h, IFLA_STATS, sizeof st, &st);
  r.end(h);
}

void put_addr(Reply& r, int family, int index, const void* addr, int prefix, int scope, const char* label,
              const in_addr* bcast) {
  nlmsghdr* h = r.start(RTM_NEWADDR, NLM_F_MULTI);
  auto* ifa = static_cast<ifaddrmsg*>(nlm_nlmsg_put_extra_header(h, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(family);
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_flags = IFA_F_PERMANENT;
  ifa->ifa_scope = static_cast<uint8_t>(scope);
  ifa->ifa_index = static_cast<uint32_t>(index);
  const size_t alen = family == AF_INET ? 4 : 16;
  nlm_attr_put(h, IFA_ADDRESS, alen, addr);
  if (family == AF_INET) {
    nlm_attr_put(h, IFA_LOCAL, alen, addr);
    if (bcast) nlm_attr_put(h, IFA_BROADCAST, 4, bcast);
    nlm_attr_put_strz(h, IFA_LABEL, label);
  }
  nlm_attr_put_u32(h, IFA_FLAGS, IFA_F_PERMANENT);
  ifa_cacheinfo ci{kForever, kForever, 0, 0};
  nlm_attr_put(h, IFA_CACHEINFO, sizeof ci, &ci);
  r.end(h);
}

in6_addr link_local(const unsigned char* mac) {
  in6_addr a{};
  a.s6_addr[0] = 0xfe;
  a.s6_addr[1] = 0x80;
  a.s6_addr[8] = mac[0] ^ 0x02;
  a.s6_addr[9] = mac[1];
  a.s6_addr[10] = mac[2];
  a.s6_addr[11] = 0xff;
  a.s6_addr[12] = 0xfe;
  a.s6_addr[13] = mac[3];
  a.s6_addr[14] = mac[4];
  a.s6_addr[15] = mac[5];
  return a;
}

in6_addr link_local(const NetConfig& n) { return link_local(n.mac); }

// A VDE view's addresses, from its model: lo's when lo is up, vde0's fe80:: when vde0 is up
// (the kernel's autoconf on ns), the rest as added.
void dump_vde_addrs(Reply& r, const NetState::Model& m, int family) {
  in_addr lo4 = v4("127.0.0.1");
  in6_addr lo6 = loop6();
  if (m.up[1] && family != AF_INET6) put_addr(r, AF_INET, 1, &lo4, 8, RT_SCOPE_HOST, "lo", nullptr);
  for (const NetState::IfAddr& a : m.addrs) {
    if (a.family != AF_INET || family == AF_INET6) continue;
    in_addr bc;
    std::memcpy(&bc, a.bcast, 4);
    put_addr(r, AF_INET, a.index, a.addr, a.prefix, a.index == 1 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE,
             if_name(a.index).c_str(), a.brd ? &bc : nullptr);
  }
  if (family == AF_INET) return;
  if (m.up[1]) put_addr(r, AF_INET6, 1, &lo6, 128, RT_SCOPE_HOST, "lo", nullptr);
  for (int i = 2; i <= m.last(); ++i) {
    for (const NetState::IfAddr& a : m.addrs)
      if (a.family == AF_INET6 && a.index == i)
        put_addr(r, AF_INET6, a.index, a.addr, a.prefix, RT_SCOPE_UNIVERSE, if_name(a.index).c_str(), nullptr);
    if (m.up[static_cast<size_t>(i)]) {
      in6_addr ll = link_local(m.mac[static_cast<size_t>(i)].data());
      put_addr(r, AF_INET6, i, &ll, 64, RT_SCOPE_LINK, if_name(i).c_str(), nullptr);
    }
  }
  for (const NetState::IfAddr& a : m.addrs)  // (lo's own additions)
    if (a.family == AF_INET6 && a.index == 1)
      put_addr(r, AF_INET6, 1, a.addr, a.prefix, RT_SCOPE_UNIVERSE, "lo", nullptr);
}

void dump_addrs(Reply& r, const NetConfig& n, int family) {
  in_addr lo4 = v4("127.0.0.1");
  in6_addr lo6 = loop6();
  if (family != AF_INET6) put_addr(r, AF_INET, 1, &lo4, 8, RT_SCOPE_HOST, "lo", nullptr);
  if (family != AF_INET) put_addr(r, AF_INET6, 1, &lo6, 128, RT_SCOPE_HOST, "lo", nullptr);
  if (!slirp_of(n)) return;
  if (family != AF_INET6) put_addr(r, AF_INET, 2, &n.addr, n.prefix, RT_SCOPE_UNIVERSE, "vde0", &n.bcast);
  if (family != AF_INET) {
    put_addr(r, AF_INET6, 2, &n.addr6, 64, RT_SCOPE_UNIVERSE, "vde0", nullptr);
    in6_addr ll = link_local(n);
    put_addr(r, AF_INET6, 2, &ll, 64, RT_SCOPE_LINK, "vde0", nullptr);
  }
}

struct RouteSpec {
  int family, table, type, proto, scope, dst_len;
  const void* dst;
  const void* gw;
  const void* src;
  int oif;
  uint32_t prio;  // 0: none
  bool pref;      // RTA_PREF medium (IPv6)
};

void put_route(Reply& r, const RouteSpec& s) {
  nlmsghdr* h = r.start(RTM_NEWROUTE, NLM_F_MULTI);
  auto* rt = static_cast<rtmsg*>(nlm_nlmsg_put_extra_header(h, sizeof(rtmsg)));
  const size_t alen = s.family == AF_INET ? 4 : 16;
  rt->rtm_family = static_cast<uint8_t>(s.family);
  rt->rtm_dst_len = static_cast<uint8_t>(s.dst_len);
  rt->rtm_table = static_cast<uint8_t>(s.table);
  rt->rtm_protocol = static_cast<uint8_t>(s.proto);
  rt->rtm_scope = static_cast<uint8_t>(s.scope);
  rt->rtm_type = static_cast<uint8_t>(s.type);
  nlm_attr_put_u32(h, RTA_TABLE, static_cast<uint32_t>(s.table));
  if (s.dst) nlm_attr_put(h, RTA_DST, alen, s.dst);
  if (s.prio) nlm_attr_put_u32(h, RTA_PRIORITY, s.prio);
  if (s.src) nlm_attr_put(h, RTA_PREFSRC, alen, s.src);
  if (s.gw) nlm_attr_put(h, RTA_GATEWAY, alen, s.gw);
  nlm_attr_put_u32(h, RTA_OIF, static_cast<uint32_t>(s.oif));
  if (s.pref) nlm_attr_put_u8(h, RTA_PREF, 0 /* ICMPV6_ROUTER_PREF_MEDIUM */);
  r.end(h);
}

void dump_routes(Reply& r, const NetConfig& n, int family) {
  in_addr lo_net = v4("127.0.0.0"), lo = v4("127.0.0.1"), lo_b = v4("127.255.255.255");
  const bool slirp = slirp_of(n);
  if (family != AF_INET6) {
    if (slirp) {
      in_addr net{htonl(ntohl(n.addr.s_addr) & (n.prefix ? ~uint32_t{0} << (32 - n.prefix) : 0))};
      if (n.gateway.s_addr)
        put_route(r, {AF_INET, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_UNIVERSE, 0, nullptr, &n.gateway,
                      nullptr, 2, 0, false});
      put_route(r, {AF_INET, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_LINK, n.prefix, &net, nullptr,
                    &n.addr, 2, 0, false});
      put_route(r, {AF_INET, RT_TABLE_LOCAL, RTN_LOCAL, RTPROT_KERNEL, RT_SCOPE_HOST, 32, &n.addr, nullptr, &n.addr,
                    2, 0, false});
      put_route(r, {AF_INET, RT_TABLE_LOCAL, RTN_BROADCAST, RTPROT_KERNEL, RT_SCOPE_LINK, 32, &n.bcast, nullptr,
                    &n.addr, 2, 0, false});
    }
    put_route(r, {AF_INET, RT_TABLE_LOCAL, RTN_LOCAL, RTPROT_KERNEL, RT_SCOPE_HOST, 8, &lo_net, nullptr, &lo, 1, 0,
                  false});
    put_route(r, {AF_INET, RT_TABLE_LOCAL, RTN_LOCAL, RTPROT_KERNEL, RT_SCOPE_HOST, 32, &lo, nullptr, &lo, 1, 0,
                  false});
    put_route(r, {AF_INET, RT_TABLE_LOCAL, RTN_BROADCAST, RTPROT_KERNEL, RT_SCOPE_LINK, 32, &lo_b, nullptr, &lo, 1,
                  0, false});
  }
  if (family != AF_INET && slirp) {
    in6_addr net6{}, ll{};
    std::memcpy(&net6, &n.addr6, 8);
    ll.s6_addr[0] = 0xfe;
    ll.s6_addr[1] = 0x80;
    put_route(r, {AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_UNIVERSE, 64, &net6, nullptr, nullptr,
                  2, 256, true});
    put_route(r, {AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_UNIVERSE, 64, &ll, nullptr, nullptr, 2,
                  256, true});
    put_route(r, {AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_UNIVERSE, 0, nullptr, &n.gateway6,
                  nullptr, 2, 1, true});
  }
}


// A VDE view's routes: each address's subnet and local entries (as the kernel adds them), the
// static routes, lo's when it is up, fe80::/64 on each interface that is up. In the kernel's
// dump order: IPv4 main then local, each by destination (its FIB trie); IPv6 by destination,
// interface order within one, default routes last (its tree's root).
void dump_vde_routes(Reply& r, const NetState::Model& m, int family) {
  struct R {
    int family, table, type, proto, scope, dst_len;
    unsigned char dst[16], gw[16], src[16];
    bool has_dst, has_gw, has_src;
    int oif;
    uint32_t prio;
  };
  std::vector<R> r4, r6;
  auto up = [&](int index) { return index >= 1 && index <= m.last() && m.up[static_cast<size_t>(index)]; };
  if (family != AF_INET6) {
    for (const NetState::StaticRoute& s : m.routes) {
      if (s.family != AF_INET || !up(s.oif)) continue;
      R x{AF_INET, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_UNIVERSE, s.dst_len, {}, {}, {}, s.dst_len != 0, true, false, s.oif, s.prio};
      std::memcpy(x.dst, s.dst, 4), std::memcpy(x.gw, s.gw, 4);
      r4.push_back(x);
    }
    for (const NetState::IfAddr& a : m.addrs) {
      if (a.family != AF_INET || a.index < 2 || !up(a.index)) continue;
      in_addr ad, net;
      std::memcpy(&ad, a.addr, 4);
      uint32_t mask = a.prefix ? ~uint32_t{0} << (32 - a.prefix) : 0;
      net.s_addr = htonl(ntohl(ad.s_addr) & mask);
      R x{AF_INET, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_LINK, a.prefix, {}, {}, {}, true, false, true, a.index, 0};
      std::memcpy(x.dst, &net, 4), std::memcpy(x.src, a.addr, 4);
      r4.push_back(x);
      R l{AF_INET, RT_TABLE_LOCAL, RTN_LOCAL, RTPROT_KERNEL, RT_SCOPE_HOST, 32, {}, {}, {}, true, false, true, a.index, 0};
      std::memcpy(l.dst, a.addr, 4), std::memcpy(l.src, a.addr, 4);
      r4.push_back(l);
      if (a.brd) {
        R b = l;
        b.type = RTN_BROADCAST, b.scope = RT_SCOPE_LINK;
        std::memcpy(b.dst, a.bcast, 4);
        r4.push_back(b);
      }
    }
    if (m.up[1]) {
      in_addr lo_net = v4("127.0.0.0"), lo = v4("127.0.0.1"), lo_b = v4("127.255.255.255");
      for (auto [type, len, dst] : {std::tuple{RTN_LOCAL, 8, lo_net}, std::tuple{RTN_LOCAL, 32, lo}, std::tuple{RTN_BROADCAST, 32, lo_b}}) {
        R x{AF_INET, RT_TABLE_LOCAL, type, RTPROT_KERNEL, type == RTN_LOCAL ? RT_SCOPE_HOST : RT_SCOPE_LINK, len, {}, {}, {}, true, false, true, 1, 0};
        std::memcpy(x.dst, &dst, 4), std::memcpy(x.src, &lo, 4);
        r4.push_back(x);
      }
    }
    std::stable_sort(r4.begin(), r4.end(), [](const R& a, const R& b) {
      if (a.table != b.table) return a.table == RT_TABLE_MAIN;
      const int c = std::memcmp(a.dst, b.dst, 4);
      return c != 0 ? c < 0 : a.dst_len < b.dst_len;
    });
  }
  if (family != AF_INET) {
    for (int i = 2; i <= m.last(); ++i) {
      if (!up(i)) continue;
      for (const NetState::IfAddr& a : m.addrs) {
        if (a.family != AF_INET6 || a.index != i) continue;
        R x{AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_UNIVERSE, a.prefix, {}, {}, {}, true, false, false, i, 256};
        for (int b = 0; b < 16; ++b)
          x.dst[b] = static_cast<unsigned char>(a.addr[b] & (a.prefix >= (b + 1) * 8 ? 0xff : a.prefix <= b * 8 ? 0 : 0xff << (8 - (a.prefix - b * 8))));
        r6.push_back(x);
      }
      R ll{AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RT_SCOPE_UNIVERSE, 64, {0xfe, 0x80}, {}, {}, true, false, false, i, 256};
      r6.push_back(ll);
    }
    for (const NetState::StaticRoute& s : m.routes) {
      if (s.family != AF_INET6 || !up(s.oif)) continue;
      R x{AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_UNIVERSE, s.dst_len, {}, {}, {}, s.dst_len != 0, true, false, s.oif, s.prio ? s.prio : 1024};
      std::memcpy(x.dst, s.dst, 16), std::memcpy(x.gw, s.gw, 16);
      r6.push_back(x);
    }
    std::stable_sort(r6.begin(), r6.end(), [](const R& a, const R& b) {
      if ((a.dst_len == 0) != (b.dst_len == 0)) return b.dst_len == 0;
      if (a.dst_len == 0) return a.prio < b.prio;
      const int c = std::memcmp(a.dst, b.dst, 16);
      return c != 0 ? c < 0 : a.dst_len < b.dst_len;
    });
  }
  for (const std::vector<R>* list : {&r4, &r6})
    for (const R& x : *list)
      put_route(r, {x.family, x.table, x.type, x.proto, x.scope, x.dst_len, x.has_dst ? x.dst : nullptr,
                    x.has_gw ? x.gw : nullptr, x.has_src ? x.src : nullptr, x.oif, x.prio, x.family == AF_INET6});
}

// The attributes of a request, by type (the last of each).
std::map<int, const nlattr*> attrs_of(const nlmsghdr* h, size_t fixed) {
  std::map<int, const nlattr*> out;
  if (h->nlmsg_len < NLMSG_LENGTH(fixed)) return out;
  const char* tail = static_cast<const char*>(nlm_nlmsg_get_payload_tail(h));
  for (auto* a = static_cast<const nlattr*>(nlm_nlmsg_get_payload_offset(h, fixed));
       nlm_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = nlm_attr_next(a))
    out[nlm_attr_get_type(a)] = a;
  return out;
}
int index_of_name(const nlattr* a) {
  const std::string_view name(nlm_attr_get_str(a), strnlen(nlm_attr_get_str(a), nlm_attr_get_payload_len(a)));
  if (name == "lo") return 1;
  if (name.size() < 4 || name.size() > 5 || name.substr(0, 3) != "vde" || name[3] < '0' || name[3] > '9') return -1;
  return 2 + std::atoi(std::string(name.substr(3)).c_str());
}

// A change of a VDE view's interfaces (ip addr add/del, ip link set, ip route add/del): the
// model and the stack. Returns 0 or an errno, as the kernel would for the view's own netns.
int change_vde(NetState& st, const nlmsghdr* h) {
  NetState::Model& m = st.model;
  VStack* vs = st.cfg.vstack.get();
  const uint16_t t = h->nlmsg_type;
  if (t == RTM_NEWLINK || t == RTM_SETLINK) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return EINVAL;
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    auto at = attrs_of(h, sizeof(ifinfomsg));
    int index = ifi->ifi_index;
    if (!index && at.count(IFLA_IFNAME)) index = index_of_name(at[IFLA_IFNAME]);
    if (index < 1 || index > m.last()) return (h->nlmsg_flags & NLM_F_CREATE) ? EOPNOTSUPP : ENODEV;
    if (at.count(IFLA_MTU) && nlm_attr_get_payload_len(at[IFLA_MTU]) >= 4) {
      uint32_t mtu;
      std::memcpy(&mtu, nlm_attr_get_payload(at[IFLA_MTU]), 4);
      if (index >= 2) {
        if (mtu < 68 || mtu > static_cast<uint32_t>(std::max(9198, m.mtu[static_cast<size_t>(index)]))) return EINVAL;
        m.mtu[static_cast<size_t>(index)] = static_cast<int>(mtu);
      }
    }
    if (ifi->ifi_change & IFF_UP) {
      const bool up = ifi->ifi_flags & IFF_UP;
      if (index >= 2 && vs && up != m.up[static_cast<size_t>(index)])
        if (int e = vstack_link(*vs, up, index - 2)) return e;
      m.up[static_cast<size_t>(index)] = up;
    }
    return 0;
  }
  if (t == RTM_NEWADDR || t == RTM_DELADDR) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return EINVAL;
    auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    auto at = attrs_of(h, sizeof(ifaddrmsg));
    const int family = ifa->ifa_family;
    const size_t alen = vs::addr_len(family);
    if (!alen) return EAFNOSUPPORT;
    const nlattr* a = at.count(IFA_LOCAL) ? at[IFA_LOCAL] : at.count(IFA_ADDRESS) ? at[IFA_ADDRESS] : nullptr;
    if (!a || nlm_attr_get_payload_len(a) < alen) return EINVAL;
    if (ifa->ifa_index < 1 || static_cast<int>(ifa->ifa_index) > m.last()) return ENODEV;
    if (ifa->ifa_prefixlen > alen * 8) return EINVAL;
    NetState::IfAddr na{family, static_cast<int>(ifa->ifa_index), ifa->ifa_prefixlen, {}};
    std::memcpy(na.addr, nlm_attr_get_payload(a), alen);
    if (family == AF_INET && at.count(IFA_BROADCAST) && nlm_attr_get_payload_len(at[IFA_BROADCAST]) >= 4) {
      na.brd = true;
      std::memcpy(na.bcast, nlm_attr_get_payload(at[IFA_BROADCAST]), 4);
    }
    auto it = std::find_if(m.addrs.begin(), m.addrs.end(), [&](const NetState::IfAddr& x) {
      return x.family == family && x.index == na.index && std::memcmp(x.addr, na.addr, alen) == 0;
    });
    if (t == RTM_NEWADDR) {
      if (it != m.addrs.end()) return (h->nlmsg_flags & NLM_F_EXCL) ? EEXIST : 0;
      if (m.addrs.size() >= 64) return ENOSPC;
      if (na.index >= 2 && vs)
        if (int e = vstack_addr(*vs, true, family, na.addr, na.prefix, na.index - 2)) return e;
      m.addrs.push_back(na);
    } else {
      if (it == m.addrs.end()) return EADDRNOTAVAIL;
      if (na.index >= 2 && vs) (void)vstack_addr(*vs, false, family, it->addr, it->prefix, na.index - 2);
      m.addrs.erase(it);
    }
    return 0;
  }
  if (t == RTM_NEWROUTE || t == RTM_DELROUTE) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return EINVAL;
    auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(h));
    auto at = attrs_of(h, sizeof(rtmsg));
    const int family = rt->rtm_family;
    const size_t alen = vs::addr_len(family);
    if (!alen) return EAFNOSUPPORT;
    if (rt->rtm_dst_len > alen * 8) return EINVAL;
    NetState::StaticRoute nr{family, rt->rtm_dst_len, {}, {}};
    if (at.count(RTA_DST) && nlm_attr_get_payload_len(at[RTA_DST]) >= alen)
      std::memcpy(nr.dst, nlm_attr_get_payload(at[RTA_DST]), alen);
    if (!at.count(RTA_GATEWAY) || nlm_attr_get_payload_len(at[RTA_GATEWAY]) < alen)
      return t == RTM_NEWROUTE ? EOPNOTSUPP : ESRCH;  // device routes: not emulated
    std::memcpy(nr.gw, nlm_attr_get_payload(at[RTA_GATEWAY]), alen);
    auto it = std::find_if(m.routes.begin(), m.routes.end(), [&](const NetState::StaticRoute& x) {
      return x.family == family && x.dst_len == nr.dst_len && std::memcmp(x.dst, nr.dst, alen) == 0;
    });
    if (t == RTM_NEWROUTE) {
      if (it != m.routes.end()) return EEXIST;
      // The gateway must be on a subnet of an interface that is up (the kernel: "Nexthop has
      // invalid gateway"); RTA_OIF, when given, names that interface.
      int want = 0;
      if (at.count(RTA_OIF) && nlm_attr_get_payload_len(at[RTA_OIF]) >= 4) std::memcpy(&want, nlm_attr_get_payload(at[RTA_OIF]), 4);
      nr.oif = 0;
      for (const NetState::IfAddr& a : m.addrs)
        if (!nr.oif && a.family == family && a.index >= 2 && (!want || a.index == want) &&
            m.up[static_cast<size_t>(a.index)] && vs::same_net(a.addr, nr.gw, a.prefix))
          nr.oif = a.index;
      if (!nr.oif) return ENETUNREACH;
      if (m.routes.size() >= 64) return ENOSPC;
      if (vs)
        if (int e = vstack_route(*vs, true, family, nr.dst, nr.dst_len, nr.gw, nr.oif - 2)) return e;
      m.routes.push_back(nr);
    } else {
      if (it == m.routes.end()) return ESRCH;
      if (vs) (void)vstack_route(*vs, false, family, it->dst, it->dst_len, it->gw, it->oif - 2);
      m.routes.erase(it);
    }
    return 0;
  }
  return EOPNOTSUPP;
}

// One request: its replies appended to r.
void serve_request(NetState& st, const nlmsghdr* h, Reply& r) {
  const NetConfig& n = st.cfg;
  r.seq = h->nlmsg_seq;
  if (!(h->nlmsg_flags & NLM_F_REQUEST) || h->nlmsg_type < NLMSG_MIN_TYPE) return;
  const bool dump = (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  const uint16_t t = h->nlmsg_type;
  const int kind = (t - RTM_BASE) % 4;  // 0 NEW, 1 DEL, 2 GET, 3 SET
  if (kind != 2 && vde_of(n)) return r.err(h, change_vde(st, h));  // the view's own interfaces
  if (kind != 2) return r.err(h, EPERM);  // what an ns view without capabilities is told
  auto family = [&]() -> int {
    if (h->nlmsg_len < NLMSG_LENGTH(1)) return AF_UNSPEC;
    return static_cast<const uint8_t*>(NLMSG_DATA(h))[0];
  };
  switch (t) {
    case RTM_GETLINK: {
      const NetState::Model& m = st.model;
      const bool vde = vde_of(n);
      const int links = vde ? m.last() : slirp_of(n) ? 2 : 1;
      auto link = [&](int i, uint16_t flags) {
        const size_t k = static_cast<size_t>(i);
        put_link(r, n, i, flags, !vde || m.up[k], vde ? m.mtu[k] : 0, vde && i >= 2 ? m.mac[k].data() : nullptr);
      };
      if (dump) {
        for (int i = 1; i <= links; ++i) link(i, NLM_F_MULTI);
        return r.done();
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return r.err(h, EINVAL);
      auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      int index = ifi->ifi_index;
      if (!index) {
        const char* tail = static_cast<const char*>(nlm_nlmsg_get_payload_tail(h));
        for (auto* a = static_cast<const nlattr*>(nlm_nlmsg_get_payload_offset(h, sizeof(ifinfomsg)));
             nlm_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = nlm_attr_next(a)) {
          if (nlm_attr_get_type(a) != IFLA_IFNAME) continue;
          const std::string_view name(nlm_attr_get_str(a),
                                      strnlen(nlm_attr_get_str(a), nlm_attr_get_payload_len(a)));  // NUL or not
          index = index_of_name(a);
        }
      }
      if (index < 1 || index > links) return r.err(h, ENODEV);
      link(index, 0);
      return;
    }
    case RTM_GETADDR:
      if (!dump) return r.err(h, EOPNOTSUPP);
      if (vde_of(n)) dump_vde_addrs(r, st.model, family());
      else dump_addrs(r, n, family());
      return r.done();
    case RTM_GETROUTE:
      if (!dump) return r.err(h, EOPNOTSUPP);  // `ip route get`: not emulated
      if (vde_of(n)) dump_vde_routes(r, st.model, family());
      else dump_routes(r, n, family());
      return r.done();
    default:
      if (dump) return r.done();  // neighbours, rules, qdiscs…: none
      return r.err(h, EOPNOTSUPP);
  }
}

void* rtnl_main(void* arg) {
  std::unique_ptr<std::shared_ptr<NetState>> hold(static_cast<std::shared_ptr<NetState>*>(arg));
  NetState* st = hold->get();
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, wake_signal());
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  std::vector<char> buf(65536);
  for (;;) {
    sockaddr_nl from{};
    socklen_t flen = sizeof from;
    ssize_t len = ::recvfrom(st->server.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (len < 0 && errno == EINTR) continue;
    if (len <= 0) continue;  // a wake-up of the monitor's, or a truncated datagram
    {
      // NETLINK_USERSOCK: any local process may send here; only the view's sockets are served
      // (the kernel sets nl_pid to the sender's port, which no one can forge).
      std::lock_guard<std::mutex> lock(st->mu);
      if (!st->ports.count(from.nl_pid)) continue;
    }
    Reply r;
    r.pid = from.nl_pid;
    int left = static_cast<int>(len);
    for (const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf.data()); nlm_nlmsg_ok(h, left);
         h = nlm_nlmsg_next(h, &left)) {
      serve_request(*st, h, r);
      if (h->nlmsg_flags & NLM_F_ACK && !r.buf.empty() &&
          reinterpret_cast<const nlmsghdr*>(r.buf.data())->nlmsg_type != NLMSG_ERROR && !(h->nlmsg_flags & NLM_F_DUMP))
        r.err(h, 0);
    }
    // Datagrams of at most 16 KiB, cut between messages (as the kernel's dump does).
    size_t off = 0;
    while (off < r.buf.size()) {
      size_t end = off;
      while (end < r.buf.size()) {
        auto* m = reinterpret_cast<const nlmsghdr*>(r.buf.data() + end);
        size_t next = end + NLMSG_ALIGN(m->nlmsg_len);
        if (next - off > 16384 && end > off) break;
        end = next;
      }
      sockaddr_nl to{};
      to.nl_family = AF_NETLINK;
      to.nl_pid = from.nl_pid;
      (void)::sendto(st->server.get(), r.buf.data() + off, end - off, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to),
                     sizeof to);
      off = end;
    }
  }
}

// The server, started with the first rtnetlink socket of the view. Under st->mu.
int start_server(const std::shared_ptr<NetState>& st, const NetConfig& n) {
  if (st->started) return 0;
  UniqueFd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK));
  if (!s) return errno;
  sockaddr_nl a{};
  a.nl_family = AF_NETLINK;
  socklen_t alen = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &alen) < 0)
    return errno;
  st->server = std::move(s);
  st->server_port = a.nl_pid;
  st->cfg = n;
  st->cfg.state.reset();  // no cycle: the thread holds the state, the state its copy
  auto* arg = new std::shared_ptr<NetState>(st);
  const int rc = start_masked_thread(&st->thread, rtnl_main, arg, 256 * 1024);
  if (rc) {
    delete arg;
    return rc;
  }
  ::pthread_detach(st->thread);
  st->started = true;
  return 0;
}

// ---- the trapped calls ---------------------------------------------------------------------

int sockopt(int fd, int opt) {
  int v = -1;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}
bool is_ip(int domain) { return domain == AF_INET || domain == AF_INET6; }

struct Sock {
  UniqueFd fd;
  int domain = -1, type = -1;
  bool v6only = false;
  uint64_t ino = 0;
  bool fake = false;  // one of the view's rtnetlink sockets
  bool echo = false;  // an ICMP echo stand-in (pvm/inet_echo.h)
};
// The caller's socket fd, with its domain and type; false when it is not one (the kernel says).
bool take_sock(const NetConfig& n, Call& c, int fd, Sock* s) {
  int err = 0;
  s->fd = take_fd(c, fd, &err);
  if (!s->fd) return false;
  s->domain = sockopt(s->fd.get(), SO_DOMAIN);
  if (s->domain < 0) return false;
  s->type = sockopt(s->fd.get(), SO_TYPE);
  if (s->domain == AF_INET6) {
    int v = 0;
    socklen_t len = sizeof v;
    s->v6only = ::getsockopt(s->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v;
  }
  s->ino = inode_of(s->fd.get());
  if (is_ip(s->domain) && s->type == SOCK_DGRAM) s->echo = echo_is(n, s->ino);
  if (s->domain == AF_NETLINK) {
    std::lock_guard<std::mutex> lock(n.state->mu);
    s->fake = n.state->netlink.count(s->ino) != 0;
  }
  return true;
}

bool read_addr(Call& c, uint64_t addr, uint64_t len, sockaddr_storage* out) {
  if (!addr || len < sizeof(sa_family_t) || len > sizeof *out) return false;
  *out = {};
  return read_mem(c.tid, addr, out, len);
}

// Binds an unbound socket to the view's private loopback address (port 0), so that its peer in
// the view sees it as 127.0.0.1.
void bind_own(const NetConfig& n, const Sock& s) {
  if (s.v6only) return;  // its loopback is the host's ::1
  sockaddr_in6 cur{};
  socklen_t len = sizeof cur;
  if (::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&cur), &len) < 0) return;
  Addr a;
  if (parse(&cur, len, &a) && a.port) return;  // bound already
  sockaddr_in6 me;
  unsigned mlen;
  put({true, n.priv, {}, 0}, s.domain, &me, &mlen);
  (void)::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&me), mlen);
}

// A connect that may wait, on the worker: interrupted by the wake-up, a TCP connect goes on
// in the kernel (a second connect says EALREADY), so the wait goes on in poll().
long connect_wait(Call& c, int fd, const sockaddr* a, socklen_t len) {
  bool started = false;
  return wait_like_caller(c, [&]() -> long {
    if (!started) {
      started = true;
      return ::connect(fd, a, len);
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, -1) < 0) return -1;
    int e = sockopt(fd, SO_ERROR);
    if (e > 0) return errno = e, -1;
    return 0;
  });
}

Answer do_connect(const NetConfig& n, Call& c, Sock& s) {
  sockaddr_storage ss;
  if (!read_addr(c, c.a[1], c.a[2], &ss)) return Answer::cont();
  if (s.fake) return Answer::value(0);  // to the kernel: it is connected to the server already
  Mapping m = map_dest(n, &ss, static_cast<unsigned>(c.a[2]), s.domain, s.v6only, s.type);
  echo_forget(n, s.ino);
  if (m.route == Route::kError && s.type == SOCK_DGRAM && !s.echo) {
    // A virtual address of the network with nothing behind it on the host: the sink, so the
    // connect succeeds as on ns (ping's source-address probe; pvm/inet_echo.h).
    int e = echo_sink_connect(n, s.fd.get(), s.domain, s.v6only, s.ino, ss, static_cast<unsigned>(c.a[2]));
    if (e >= 0) return e ? Answer::error(e) : Answer::value(0);
  }
  if (m.route == Route::kNative) return Answer::cont();
  if (m.route == Route::kError) return Answer::error(m.err);
  if (m.own) bind_own(n, s);
  return Answer::result(connect_wait(c, s.fd.get(), reinterpret_cast<sockaddr*>(&m.host), m.len));
}

Answer do_bind(const NetConfig& n, Call& c, Sock& s) {
  sockaddr_storage ss;
  if (!read_addr(c, c.a[1], c.a[2], &ss)) return Answer::cont();
  if (s.fake) {
    // Bound (to a port of its own) when it was connected to the server: a second bind to
    // "any port" is EINVAL natively, so it is answered here. Multicast groups (ip monitor)
    // are not emulated.
    return reinterpret_cast<sockaddr_nl*>(&ss)->nl_pid ? Answer::cont() : Answer::value(0);
  }
  Mapping m = map_bind(n, &ss, static_cast<unsigned>(c.a[2]), s.domain, s.type, s.v6only);
  if (m.route == Route::kNative) return Answer::cont();
  if (m.route == Route::kError) return Answer::error(m.err);
  if (m.err < 0) {  // a forwarded port: the reservation makes room
    std::lock_guard<std::mutex> lock(n.state->mu);
    const NetConfig::Forward& f = n.forwards[static_cast<size_t>(-1 - m.err)];
    for (UniqueFd& r : n.state->reserved)
      if (r.get() == f.reserved) r.reset();
  }
  if (::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&m.host), m.len) < 0) {
    // A forwarded TCP port of the host may hold connections of a view that just ended
    // (TIME_WAIT), which the view's own port on ns never has: bound with SO_REUSEADDR for the
    // call only (the flag counts at bind time), the program's setting left as it was.
    const int e = errno;
    int reuse = sockopt(s.fd.get(), SO_REUSEADDR), one = 1, zero = 0;
    if (!(m.err < 0 && e == EADDRINUSE && s.type == SOCK_STREAM && reuse == 0)) return Answer::error(e);
    (void)::setsockopt(s.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool bound = ::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&m.host), m.len) == 0;
    const int e2 = errno;
    (void)::setsockopt(s.fd.get(), SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero);
    if (!bound) return Answer::error(e2);
  }
  sockaddr_in6 view{};
  std::memcpy(&view, &ss, std::min<size_t>(c.a[2], sizeof view));
  std::lock_guard<std::mutex> lock(n.state->mu);
  if (n.state->bound.size() > 65536) n.state->bound.clear();  // sockets long closed
  n.state->bound[s.ino] = view;
  return Answer::value(0);
}

// The address of either end, in view terms.
bool view_name(const NetConfig& n, const Sock& s, bool local, sockaddr_storage* out, socklen_t* len) {
  sockaddr_storage me{}, peer{};
  socklen_t mlen = sizeof me, plen = sizeof peer;
  const bool connected = ::getpeername(s.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen) == 0;
  if (!local && !connected) return false;
  if (!local && echo_peer(n, s.ino, out, len)) return true;  // connected to the sink
  if (::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&me), &mlen) < 0) return false;
  Addr ma;
  if (local && !connected) {
    std::lock_guard<std::mutex> lock(n.state->mu);
    auto it = n.state->bound.find(s.ino);
    if (it != n.state->bound.end() && parse(&me, mlen, &ma)) {
      Addr v;
      parse(&it->second, kIn6, &v);
      v.port = v.port ? v.port : ma.port;
      sockaddr_in6 o;
      unsigned olen;
      put(v, s.domain, &o, &olen);
      std::memcpy(out, &o, olen);
      *len = olen;
      return true;
    }
  }
  *out = local ? me : peer;
  unsigned l = local ? mlen : plen;
  map_back(n, out, &l, local, s.v6only);
  *len = l;
  return true;
}

Answer do_name(const NetConfig& n, Call& c, Sock& s) {
  if (s.fake) return Answer::cont();
  socklen_t size;
  if (!read_mem(c.tid, c.a[2], &size, sizeof size)) return Answer::error(EFAULT);
  if (static_cast<int>(size) < 0) return Answer::error(EINVAL);
  sockaddr_storage ss;
  socklen_t len;
  if (!view_name(n, s, c.nr == SYS_getsockname, &ss, &len)) return Answer::cont();
  size_t k = std::min<size_t>(size, len);
  if (k && !write_mem(c.tid, c.a[1], &ss, k)) return Answer::error(EFAULT);
  if (!write_mem(c.tid, c.a[2], &len, sizeof len)) return Answer::error(EFAULT);
  return Answer::value(0);
}

bool scatter(Call& c, const std::vector<iovec>& riov, const char* data, size_t n) {
  size_t off = 0;
  for (const iovec& v : riov) {
    if (off >= n) break;
    size_t k = std::min(v.iov_len, n - off);
    if (k && !write_mem(c.tid, reinterpret_cast<uint64_t>(v.iov_base), data + off, k)) return false;
    off += k;
  }
  return true;
}
// The message's iovec array: 0, EMSGSIZE (more than UIO_MAXIOV) or EFAULT, as the kernel says.
int read_iov(Call& c, const msghdr& mh, std::vector<iovec>* riov) {
  if (mh.msg_iovlen > 1024) return EMSGSIZE;
  riov->resize(mh.msg_iovlen);
  if (riov->empty() || read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_iov), riov->data(), riov->size() * sizeof(iovec)))
    return 0;
  return EFAULT;
}

// Whether the socket is bound to the host's wildcard address (or not bound).
bool on_wildcard(const Sock& s) {
  sockaddr_in6 cur{};
  socklen_t len = sizeof cur;
  Addr a;
  if (::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&cur), &len) < 0 || !parse(&cur, len, &a)) return false;
  return a.is4 ? a.a4.s_addr == INADDR_ANY : IN6_IS_ADDR_UNSPECIFIED(&a.a6);
}

// A datagram socket bound at a forwarded port answers its host clients, who show as 10.0.2.2
// (as libslirp keeps a forwarded UDP flow open whatever allow-host-loopback says): the reply
// goes to the host's loopback.
void reply_to_forward(const NetConfig& n, const Sock& s, const sockaddr_storage* dest, Mapping* m) {
  Addr d, me;
  if (!parse(dest, sizeof *dest, &d) || !(d.is4 ? same(d.a4, n.gateway) : same6(d.a6, n.gateway6))) return;
  sockaddr_in6 local{};
  socklen_t len = sizeof local;
  if (::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&local), &len) < 0 || !parse(&local, len, &me)) return;
  for (const NetConfig::Forward& f : n.forwards) {
    if (!f.udp || f.host_port != me.port) continue;
    if (f.v6 ? (me.is4 || !same6(me.a6, f.host_addr6)) : (!me.is4 || !same(me.a4, f.host_addr))) continue;
    *m = mapped(d.is4 ? Addr{true, v4("127.0.0.1"), {}, d.port} : Addr{false, {}, loop6(), d.port}, s.domain);
    return;
  }
}

// sendto with an address, sendmsg with msg_name: a datagram to a translated address, or a
// request to the rtnetlink server (redirected from the kernel's address).
Answer do_sendto(const NetConfig& n, Call& c, Sock& s) {
  const bool msg = c.nr == SYS_sendmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::cont();
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  // The kernel's lengths are ints: a negative one is EINVAL, so is a sendto name longer than a
  // sockaddr_storage (the datagram went out untranslated-then-cut before).
  const int ilen = static_cast<int>(msg ? mh.msg_namelen : c.a[5]);
  if (addr && (ilen < 0 || (!msg && ilen > static_cast<int>(sizeof(sockaddr_storage))))) return Answer::error(EINVAL);
  // sendmsg: the kernel reads at most a sockaddr_storage of a longer name: so do we (else a
  // long name would go through untranslated).
  const uint64_t alen = std::min<uint64_t>(msg ? mh.msg_namelen : c.a[5], sizeof(sockaddr_storage));
  if (!addr || !alen) return Answer::cont();
  if (!s.fake && s.type == SOCK_STREAM) {
    // The address is ignored, except by TCP Fast Open, which connects to it: not translated
    // here, so refused (programs fall back to connect()).
    const uint64_t flags = msg ? c.a[2] : c.a[3];
    return flags & MSG_FASTOPEN ? Answer::error(EOPNOTSUPP) : Answer::cont();
  }
  sockaddr_storage ss;
  if (alen < sizeof(sa_family_t)) return Answer::cont();  // the kernel says EINVAL
  if (!read_addr(c, addr, alen, &ss)) return Answer::error(EFAULT);
  // UDP over IPv4 takes AF_UNSPEC as AF_INET (an old compatibility rule of the kernel's).
  if (s.domain == AF_INET && ss.ss_family == AF_UNSPEC && alen >= sizeof(sockaddr_in)) ss.ss_family = AF_INET;
  Mapping m;
  if (s.echo) {  // an echo request (pvm/inet_echo.h)
    std::vector<iovec> riov;
    if (msg) {
      if (int e = read_iov(c, mh, &riov)) return Answer::error(e);
    } else {
      riov.push_back({reinterpret_cast<void*>(c.a[1]), std::min<uint64_t>(c.a[2], INT_MAX)});
    }
    std::vector<char> data;
    int err = 0;
    if (!gather_iov(c.tid, riov, 65536, &data, &err)) return Answer::error(err);
    return echo_send(n, s.fd.get(), s.ino, s.domain, ss, static_cast<unsigned>(alen), data);
  }
  if (!s.fake) {
    m = map_dest(n, &ss, static_cast<unsigned>(alen), s.domain, s.v6only, s.type);
    if (m.route == Route::kError && m.err == ENETUNREACH && n.kind == NetConfig::kSlirp) reply_to_forward(n, s, &ss, &m);
    if (m.route == Route::kNative) return Answer::cont();
    if (m.route == Route::kError) return Answer::error(m.err);
    if (m.own) bind_own(n, s);
  }
  std::vector<iovec> riov;
  if (msg) {
    if (int e = read_iov(c, mh, &riov)) return Answer::error(e);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), std::min<uint64_t>(c.a[2], INT_MAX)});  // the kernel caps a length at INT_MAX
  }
  std::vector<char> data;
  int err = 0;
  if (!gather_iov(c.tid, riov, 1u << 20, &data, &err)) return Answer::error(err);
  std::vector<char> control;
  if (msg && mh.msg_controllen && !s.fake) {
    if (mh.msg_controllen > 65536) return Answer::error(ENOBUFS);
    control.resize(mh.msg_controllen);
    if (!read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_control), control.data(), control.size()))
      return Answer::error(EFAULT);
  }
  if (!s.fake && m.own && s.type == SOCK_DGRAM && on_wildcard(s)) {
    // To the view itself from a socket on the host's wildcard: the source is set to the view's
    // private address (IP_PKTINFO), so the receiver sees the view's 127.0.0.1 and not the host.
    size_t off = CMSG_ALIGN(control.size());
    control.resize(off + CMSG_SPACE(sizeof(in_pktinfo)), 0);
    auto* cm = reinterpret_cast<cmsghdr*>(control.data() + off);
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi{};
    pi.ipi_spec_dst = n.priv;
    std::memcpy(CMSG_DATA(cm), &pi, sizeof pi);
  }
  iovec one = {data.data(), data.size()};
  msghdr out{};
  if (!s.fake) {
    out.msg_name = &m.host;
    out.msg_namelen = m.len;
  }
  out.msg_iov = &one;
  out.msg_iovlen = 1;
  out.msg_control = control.empty() ? nullptr : control.data();
  out.msg_controllen = control.size();
  const int flags = c.arg_int(msg ? 2 : 3) | MSG_NOSIGNAL;
  return Answer::result(wait_like_caller(c, [&] { return static_cast<long>(::sendmsg(s.fd.get(), &out, flags)); }));
}

// recvfrom with an address, recvmsg with msg_name on a datagram socket or an rtnetlink one:
// received here, the sender given in view terms.
Answer do_recv(const NetConfig& n, Call& c, Sock& s) {
  const bool msg = c.nr == SYS_recvmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::cont();
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  const uint64_t alen_addr = msg ? 0 : c.a[5];
  if (!s.fake && (!addr || s.type == SOCK_STREAM)) return Answer::cont();
  socklen_t cap = msg ? mh.msg_namelen : 0;
  if (!msg && addr && !read_mem(c.tid, alen_addr, &cap, sizeof cap)) return Answer::error(EFAULT);
  std::vector<iovec> riov;
  if (msg) {
    if (int e = read_iov(c, mh, &riov)) return Answer::error(e);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), std::min<uint64_t>(c.a[2], INT_MAX)});  // the kernel caps a length at INT_MAX
  }
  size_t total = 0;
  for (const iovec& v : riov) total += v.iov_len;
  std::vector<char> data(std::min<size_t>(total, 1u << 20));
  std::vector<char> control(msg ? std::min<size_t>(mh.msg_controllen, 65536) : 0);
  sockaddr_storage from{};
  iovec one = {data.data(), data.size()};
  msghdr in{};
  in.msg_name = &from;
  in.msg_namelen = sizeof from;
  in.msg_iov = &one;
  in.msg_iovlen = 1;
  in.msg_control = control.empty() ? nullptr : control.data();
  in.msg_controllen = control.size();
  const int flags = c.arg_int(msg ? 2 : 3) & ~MSG_CMSG_CLOEXEC;
  long got = recv_like_caller(c, s.fd.get(), flags, [&] {
    return static_cast<long>(::recvmsg(s.fd.get(), &in, flags));
  });
  if (got < 0) return Answer::error(errno);
  if (!scatter(c, riov, data.data(), std::min<size_t>(static_cast<size_t>(got), data.size())))
    return Answer::error(EFAULT);
  socklen_t flen = in.msg_namelen;
  if (s.fake) {
    auto* nl = reinterpret_cast<sockaddr_nl*>(&from);
    nl->nl_pid = 0;  // from the kernel
    nl->nl_groups = 0;
  } else if (!s.echo || !echo_from(n, &from, &flen)) {
    unsigned l = flen;
    map_back(n, &from, &l, false, s.v6only);
    flen = l;
  }
  if (addr) {
    if (cap > 0 && !write_mem(c.tid, addr, &from, std::min<size_t>(cap, flen))) return Answer::error(EFAULT);
  }
  if (msg) {
    mh.msg_namelen = addr ? flen : 0;
    mh.msg_flags = in.msg_flags;
    if (!control.empty() && in.msg_controllen &&
        !write_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_control), control.data(), in.msg_controllen))
      return Answer::error(EFAULT);
    mh.msg_controllen = in.msg_controllen;
    if (!write_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::error(EFAULT);
  } else if (addr && !write_mem(c.tid, alen_addr, &flen, sizeof flen)) {
    return Answer::error(EFAULT);
  }
  return Answer::value(got);
}

// accept/accept4 with an address argument: accepted here (on the worker, as the caller would
// wait), the peer written in view terms, the new socket handed over as the call's result.
Answer do_accept(const NetConfig& n, Call& c, Sock& s) {
  if (s.fake || !c.a[1]) return Answer::cont();
  socklen_t cap;
  if (!read_mem(c.tid, c.a[2], &cap, sizeof cap)) return Answer::error(EFAULT);
  if (static_cast<int>(cap) < 0) return Answer::error(EINVAL);
  const int flags = c.nr == SYS_accept4 ? c.arg_int(3) : 0;
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return Answer::error(EINVAL);
  sockaddr_storage peer{};
  socklen_t plen = sizeof peer;
  long fd = wait_like_caller(c, [&] {
    return static_cast<long>(::accept4(s.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen,
                                       (flags & SOCK_NONBLOCK) | SOCK_CLOEXEC));
  });
  if (fd < 0) return Answer::error(errno);
  Answer a;
  a.kind = Answer::kFd;
  a.fd = UniqueFd(static_cast<int>(fd));
  a.cloexec = (flags & SOCK_CLOEXEC) != 0;
  unsigned l = plen;
  map_back(n, &peer, &l, false, s.v6only);
  socklen_t vl = l;
  if (cap && !write_mem(c.tid, c.a[1], &peer, std::min<size_t>(cap, vl))) return Answer::error(EFAULT);
  if (!write_mem(c.tid, c.a[2], &vl, sizeof vl)) return Answer::error(EFAULT);
  return a;
}

// socket(AF_NETLINK, type, NETLINK_ROUTE): a NETLINK_USERSOCK socket connected to the server.
Answer do_socket(const NetConfig& n, Call& c) {
  if (Answer a; echo_socket(n, c, &a)) return a;  // ICMP echo (pvm/inet_echo.h)
  if (c.arg_int(0) != AF_NETLINK || c.arg_int(2) != NETLINK_ROUTE) return Answer::cont();
  const int type = c.arg_int(1);
  UniqueFd s(::socket(AF_NETLINK, type | SOCK_CLOEXEC, NETLINK_USERSOCK));
  if (!s) return Answer::error(errno);
  uint32_t port;
  {
    std::lock_guard<std::mutex> lock(n.state->mu);
    if (int e = start_server(n.state, n)) return Answer::error(e);
    port = n.state->server_port;
    if (n.state->netlink.size() > 65536) n.state->netlink.clear();
    n.state->netlink.insert(inode_of(s.get()));
  }
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  to.nl_pid = port;
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return Answer::error(errno);
  sockaddr_nl me{};
  socklen_t mlen = sizeof me;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&me), &mlen) < 0) return Answer::error(errno);
  {
    std::lock_guard<std::mutex> lock(n.state->mu);
    if (n.state->ports.size() > 65536) n.state->ports.clear();
    n.state->ports.insert(me.nl_pid);
  }
  Answer a;
  a.kind = Answer::kFd;
  a.fd = std::move(s);
  a.cloexec = (type & SOCK_CLOEXEC) != 0;
  return a;
}

}  // namespace

bool do_inet(const Config& cfg, Call& c, Answer* out) {
  const NetConfig& n = cfg.net;
  if (n.kind == NetConfig::kHost) return false;
  if (c.nr == SYS_socket) return *out = do_socket(n, c), true;
  switch (c.nr) {
    case SYS_connect: case SYS_bind: case SYS_getsockname: case SYS_getpeername:
    case SYS_sendto: case SYS_sendmsg: case SYS_recvfrom: case SYS_recvmsg: case SYS_accept: case SYS_accept4:
      break;
    default: return false;
  }
  if (c.nr == SYS_sendmsg || c.nr == SYS_recvmsg) {
    // Most of these carry no address (a connected socket's data): let them run, cheaply.
    msghdr mh{};
    if (!read_mem(c.tid, c.a[1], &mh, sizeof mh)) return false;
    if (!mh.msg_name || !mh.msg_namelen) return *out = Answer::cont(), true;
  }
  Sock s;
  if (!take_sock(n, c, c.arg_int(0), &s)) return false;
  if (!is_ip(s.domain) && !s.fake) return false;
  switch (c.nr) {
    case SYS_connect: *out = do_connect(n, c, s); return true;
    case SYS_bind: *out = do_bind(n, c, s); return true;
    case SYS_getsockname:
    case SYS_getpeername: *out = do_name(n, c, s); return true;
    case SYS_sendto:
    case SYS_sendmsg: *out = do_sendto(n, c, s); return true;
    case SYS_recvfrom:
    case SYS_recvmsg: *out = do_recv(n, c, s); return true;
    case SYS_accept:
    case SYS_accept4: *out = do_accept(n, c, s); return true;
    default: return false;
  }
}

}  // namespace vu::pvm
