// pvm/vstack.cc — the monitor's side of VDE networks on pvm: the view's IP sockets are
// socketpair ends whose other ends vu-vstack serves with lwIP. The design is in pvm/vstack.h.
#include "pvm/vstack.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <seccomp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "base/log.h"
#include "base/unique_fd.h"
#include "pvm/call.h"
#include "pvm/net.h"
#include "pvm/vstack_proto.h"

extern char** environ;

namespace vu::pvm {

class VStack {
 public:
  static constexpr int kCallTimeoutMs = 10000;  // call(): a reply later than this is ETIMEDOUT
  UniqueFd channel;
  pid_t pid = -1;
  bool stats = false;  // --net-stats: vu-vstack prints them at its end, after its linger
  struct Info {
    int domain = AF_INET, type = SOCK_STREAM, proto = 0;
    UniqueFd connecting;  // a non-blocking connect's reply, for SO_ERROR
    int error = 0;        // its outcome, once read
  };
  std::mutex mu;
  std::map<uint64_t, Info> socks;

  ~VStack() { finish(); }

  void finish() {
    pid_t p;
    {
      std::lock_guard<std::mutex> lock(mu);
      channel.reset();  // vu-vstack ends with its channel, after its linger (at most 3 s): waited
      // for that long, not cut short (a SIGKILL after 1 s lost the end of transfers and the FINs)
      p = pid;
      pid = -1;
    }
    if (p > 0) {
      int st;
      for (int i = 0; i < (stats ? 400 : 350) && ::waitpid(p, &st, WNOHANG) == 0; ++i) ::usleep(10000);
      if (::waitpid(p, &st, WNOHANG) == 0) {
        ::kill(p, SIGKILL);
        ::waitpid(p, &st, 0);
      }
    }
  }

  // Sends a request; returns the reply end (or an empty fd: errno set).
  UniqueFd send(const vs::VsReq& q, const void* payload = nullptr, int data_fd = -1) {
    int rp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0) return {};
    UniqueFd mine(rp[0]), theirs(rp[1]);
    iovec iov[2] = {{const_cast<vs::VsReq*>(&q), sizeof q}, {const_cast<void*>(payload), payload ? q.len : 0}};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(2 * sizeof(int))]{};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = payload ? 2 : 1;
    mh.msg_control = cbuf;
    const int n = data_fd >= 0 ? 2 : 1;
    mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    int fds[2] = {theirs.get(), data_fd};
    std::memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    // A copy of the channel taken under the lock: finish() (the view's end, another thread)
    // closes the channel, and its number could otherwise be another descriptor by the sendmsg.
    UniqueFd ch;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (channel) ch.reset(::fcntl(channel.get(), F_DUPFD_CLOEXEC, 0));
    }
    if (!ch) {
      errno = EPIPE;
      return {};
    }
    ssize_t w;
    while ((w = ::sendmsg(ch.get(), &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (w < 0) return {};
    return mine;
  }
  // Reads a reply; false (errno EIO) when vu-vstack is gone.
  static bool read_reply(int fd, vs::VsRep* r) {
    ssize_t n = ::recv(fd, r, sizeof *r, 0);
    if (n == static_cast<ssize_t>(sizeof *r)) return true;
    if (n >= 0) errno = EIO;
    return false;
  }
  // One request and its reply, without waiting on anything but vu-vstack's quick answer.
  vs::VsRep call(const vs::VsReq& q, const void* payload = nullptr, int data_fd = -1) {
    vs::VsRep r;
    UniqueFd rf = send(q, payload, data_fd);
    // Bounded: these requests are answered at once; a stopped or hung vu-vstack must not hold
    // the worker (and the view's call) forever. (A connect's reply is waited for elsewhere.)
    pollfd p{rf.get(), POLLIN, 0};
    if (rf && ::poll(&p, 1, kCallTimeoutMs) == 0) return r.ret = -1, r.err = ETIMEDOUT, r;
    if (!rf || !read_reply(rf.get(), &r)) r.ret = -1, r.err = errno ? errno : EIO;
    return r;
  }
};

namespace {

std::string vstack_path() {
  if (const char* env = std::getenv("VU_VSTACK"); env && *env) return env;
  std::string dir = sys::exe_dir();
  return dir.empty() ? "vu-vstack" : dir + "/vu-vstack";
}

// A new data pair: [0] the view's end, [1] the stack's, named with an autobind abstract name
// (the socket's id). UDP: SEQPACKET (boundaries, and end-of-file when the view closes). TCP:
// one byte written from the view's end before the view has it, which vu-vstack never takes —
// its end closed with that byte unread is a reset to the view (ECONNRESET), see vstack_proto.h.
bool data_pair(int type, UniqueFd* view, UniqueFd* stack, uint64_t* id) {
  int sp[2];
  if (::socketpair(AF_UNIX, (type == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, sp) < 0)
    return false;
  view->reset(sp[0]);
  stack->reset(sp[1]);
  if (type == SOCK_STREAM && ::send(sp[0], "", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) return false;
  sa_family_t fam = AF_UNIX;
  if (::bind(sp[1], reinterpret_cast<sockaddr*>(&fam), sizeof fam) < 0) return false;
  sockaddr_un a{};
  socklen_t len = sizeof a;
  if (::getsockname(sp[1], reinterpret_cast<sockaddr*>(&a), &len) < 0 || len < sizeof(sa_family_t) + 2) return false;
  *id = std::strtoull(std::string(a.sun_path + 1, len - sizeof(sa_family_t) - 1).c_str(), nullptr, 16);
  return true;
}

// The id of a view socket that is ours (its peer a socket of vu's, autobound), else 0.
uint64_t id_of(int fd) {
  ucred cr{};
  socklen_t clen = sizeof cr;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &clen) < 0 || cr.pid != ::getpid()) return 0;
  sockaddr_un a{};
  socklen_t len = sizeof a;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0 || a.sun_family != AF_UNIX ||
      len != sizeof(sa_family_t) + 6 || a.sun_path[0] != '\0')
    return 0;
  return std::strtoull(std::string(a.sun_path + 1, 5).c_str(), nullptr, 16);
}

bool read_addr(Call& c, uint64_t addr, uint64_t len, sockaddr_storage* out) {
  if (!addr || len < sizeof(sa_family_t) || len > sizeof *out) return false;
  *out = {};
  return read_mem(c.tid, addr, out, len);
}

struct VSock {
  UniqueFd fd;  // the view's end (a duplicate)
  uint64_t id = 0;
  int domain = AF_INET, type = SOCK_STREAM, proto = 0;
};

bool take(VStack& vs, Call& c, int fd, VSock* s) {
  int err = 0;
  s->fd = take_fd(c, fd, &err);
  if (!s->fd) return false;
  s->id = id_of(s->fd.get());
  if (!s->id) return false;
  std::lock_guard<std::mutex> lock(vs.mu);
  auto it = vs.socks.find(s->id);
  if (it == vs.socks.end()) return false;
  s->domain = it->second.domain;
  s->type = it->second.type;
  s->proto = it->second.proto;
  return true;
}

bool nonblocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

// The address as the view gave it, for its socket's family (IPv4 on an IPv6 socket: v4-mapped).
bool check_family(const VSock& s, const sockaddr_storage& a, uint64_t len) {
  if (a.ss_family == AF_INET) return s.domain == AF_INET && len >= sizeof(sockaddr_in);
  if (a.ss_family == AF_INET6) return s.domain == AF_INET6 && len >= 24;
  return false;
}

// A stack's address in the socket's family: IPv4 on an IPv4 socket, IPv6 (v4-mapped) on an
// IPv6 one; none (an unbound socket): the wildcard.
void normalize(int domain, vs::VsRep* r) {
  sockaddr_storage in = r->addr;
  sockaddr_storage out{};
  uint16_t port = 0;
  in_addr a4{};
  in6_addr a6{};
  bool v4 = true;
  if (r->addrlen >= sizeof(sockaddr_in) && in.ss_family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&in);
    port = s->sin_port, a4 = s->sin_addr;
  } else if (r->addrlen >= 24 && in.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&in);
    port = s->sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) && domain == AF_INET) std::memcpy(&a4, s->sin6_addr.s6_addr + 12, 4);
    else v4 = false, a6 = s->sin6_addr;
  }
  if (domain == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&out);
    s->sin_family = AF_INET, s->sin_port = port, s->sin_addr = a4;
    r->addrlen = sizeof(sockaddr_in);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&out);
    s->sin6_family = AF_INET6, s->sin6_port = port;
    if (v4 && a4.s_addr) {
      s->sin6_addr.s6_addr[10] = s->sin6_addr.s6_addr[11] = 0xff;
      std::memcpy(s->sin6_addr.s6_addr + 12, &a4, 4);
    } else if (!v4) {
      s->sin6_addr = a6;
    }
    r->addrlen = sizeof(sockaddr_in6);
  }
  r->addr = out;
}

// A reply's address into the caller's (addr, *addrlen), as the kernel does: cut to the room.
bool put_name(Call& c, uint64_t addr, uint64_t lenp, const vs::VsRep& r) {
  if (!addr) return true;
  socklen_t cap;
  if (!read_mem(c.tid, lenp, &cap, sizeof cap)) return false;
  if (static_cast<int>(cap) < 0) return false;
  socklen_t len = r.addrlen;
  if (cap && !write_mem(c.tid, addr, &r.addr, std::min<size_t>(cap, len))) return false;
  return write_mem(c.tid, lenp, &len, sizeof len);
}

Answer do_socket(VStack& vs, Call& c) {
  const int domain = c.arg_int(0), type = c.arg_int(1) & 0xf, proto = c.arg_int(2);
  if (domain != AF_INET && domain != AF_INET6) return Answer::cont();
  // ICMP echo: a ping socket (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6), served by the stack's raw pcbs
  // (ping falls back to it when SOCK_RAW is refused).
  const bool icmp = type == SOCK_DGRAM && proto == (domain == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6});
  if (type == SOCK_RAW) return Answer::error(EPERM);
  if (type != SOCK_STREAM && type != SOCK_DGRAM) return Answer::error(ESOCKTNOSUPPORT);
  if (proto && !icmp && proto != (type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP)) return Answer::error(EPROTONOSUPPORT);
  UniqueFd view, stack;
  uint64_t id;
  if (!data_pair(type, &view, &stack, &id)) return Answer::error(errno);
  {
    std::lock_guard<std::mutex> lock(vs.mu);
    if (vs.socks.size() > 65536) vs.socks.clear();
    VStack::Info& i = vs.socks[id];
    i = {};
    i.domain = domain;
    i.type = type;
    i.proto = icmp ? proto : 0;
  }
  vs::VsReq q;
  q.op = vs::kSocket;
  q.id = id;
  q.a = domain;
  q.b = type;
  q.c = icmp ? proto : 0;
  vs::VsRep r = vs.call(q, nullptr, stack.get());
  if (r.ret < 0) return Answer::error(r.err);
  if (c.arg_int(1) & SOCK_NONBLOCK) ::fcntl(view.get(), F_SETFL, O_RDWR | O_NONBLOCK);
  Answer a;
  a.kind = Answer::kFd;
  a.fd = std::move(view);
  a.cloexec = (c.arg_int(1) & SOCK_CLOEXEC) != 0;
  return a;
}

Answer do_connect(VStack& vs, Call& c, VSock& s) {
  sockaddr_storage ss;
  if (!read_addr(c, c.a[1], c.a[2], &ss)) return Answer::error(c.a[1] ? EINVAL : EFAULT);
  if (!check_family(s, ss, c.a[2])) return Answer::error(ss.ss_family == AF_UNSPEC ? EAFNOSUPPORT : EAFNOSUPPORT);
  vs::VsReq q;
  q.op = vs::kConnect;
  q.id = s.id;
  q.addrlen = static_cast<uint32_t>(c.a[2]);
  q.addr = ss;
  const bool nb = s.type == SOCK_STREAM && nonblocking(s.fd.get());
  q.c = nb;
  UniqueFd rf = vs.send(q);
  if (!rf) return Answer::error(EIO);
  if (nb) {
    std::lock_guard<std::mutex> lock(vs.mu);
    VStack::Info& i = vs.socks[s.id];
    i.connecting = std::move(rf);
    i.error = 0;
    return Answer::error(EINPROGRESS);
  }
  vs::VsRep r;
  long got = wait_like_caller(c, [&]() -> long { return VStack::read_reply(rf.get(), &r) ? 0 : -1; });
  if (got < 0) return Answer::error(errno);
  return r.ret < 0 ? Answer::error(r.err) : Answer::value(0);
}

Answer do_simple(VStack& vs, Call& c, VSock& s) {
  vs::VsReq q;
  q.id = s.id;
  if (c.nr == SYS_bind) {
    sockaddr_storage ss;
    if (!read_addr(c, c.a[1], c.a[2], &ss)) return Answer::error(EINVAL);
    if (!check_family(s, ss, c.a[2])) return Answer::error(EAFNOSUPPORT);
    q.op = vs::kBind;
    q.addr = ss;
    q.addrlen = static_cast<uint32_t>(c.a[2]);
  } else {
    if (s.type != SOCK_STREAM) return Answer::error(EOPNOTSUPP);
    q.op = vs::kListen;
    q.a = std::max(1, std::min(c.arg_int(1), 4096));
  }
  vs::VsRep r = vs.call(q);
  return r.ret < 0 ? Answer::error(r.err) : Answer::value(0);
}

Answer do_name(VStack& vs, Call& c, VSock& s) {
  vs::VsReq q;
  q.op = vs::kName;
  q.id = s.id;
  q.a = c.nr == SYS_getpeername;
  vs::VsRep r = vs.call(q);
  if (r.ret < 0) return Answer::error(r.err);
  normalize(s.domain, &r);
  if (!c.a[2]) return Answer::error(EFAULT);
  return put_name(c, c.a[1], c.a[2], r) ? Answer::value(0) : Answer::error(EFAULT);
}

Answer do_accept(VStack& vs, Call& c, VSock& s) {
  const int flags = c.nr == SYS_accept4 ? c.arg_int(3) : 0;
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) return Answer::error(EINVAL);
  if (s.type != SOCK_STREAM) return Answer::error(EOPNOTSUPP);
  for (int tries = 0; tries < 1000; ++tries) {
    char one;
    long got = wait_like_caller(c, [&] { return static_cast<long>(::recv(s.fd.get(), &one, 1, 0)); });
    if (got < 0) return Answer::error(errno);
    if (got == 0) return Answer::error(EINVAL);  // not listening (the stack closed it)
    UniqueFd view, stack;
    uint64_t id;
    if (!data_pair(SOCK_STREAM, &view, &stack, &id)) return Answer::error(errno);
    {
      std::lock_guard<std::mutex> lock(vs.mu);
      VStack::Info& i = vs.socks[id];
      i = {};
      i.domain = s.domain;
      i.type = SOCK_STREAM;
    }
    vs::VsReq q;
    q.op = vs::kAccept;
    q.id = s.id;
    q.id2 = id;
    vs::VsRep r = vs.call(q, nullptr, stack.get());
    if (r.ret < 0 && r.err == EAGAIN) continue;  // another thread took it
    if (r.ret < 0) return Answer::error(r.err);
    if (flags & SOCK_NONBLOCK) ::fcntl(view.get(), F_SETFL, O_RDWR | O_NONBLOCK);
    // SO_LINGER is inherited from the listener, as Linux's (vu-vstack does so for the RST).
    linger lg{};
    socklen_t lgl = sizeof lg;
    if (::getsockopt(s.fd.get(), SOL_SOCKET, SO_LINGER, &lg, &lgl) == 0 && lg.l_onoff)
      ::setsockopt(view.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    normalize(s.domain, &r);
    if (c.a[1] && !put_name(c, c.a[1], c.a[2], r)) return Answer::error(EFAULT);
    Answer a;
    a.kind = Answer::kFd;
    a.fd = std::move(view);
    a.cloexec = (flags & SOCK_CLOEXEC) != 0;
    return a;
  }
  return Answer::error(EAGAIN);
}

bool read_iov(Call& c, const msghdr& mh, std::vector<iovec>* riov) {
  if (mh.msg_iovlen > 1024) return false;
  riov->resize(mh.msg_iovlen);
  return riov->empty() ||
         read_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_iov), riov->data(), riov->size() * sizeof(iovec));
}

// sendto/sendmsg with an address: a datagram given to the stack for that address. On a stream
// socket the address is ignored (as by TCP): the bytes go into the pair.
Answer do_sendto(VStack& vs, Call& c, VSock& s) {
  const bool msg = c.nr == SYS_sendmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::error(EFAULT);
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  const uint64_t alen = std::min<uint64_t>(msg ? mh.msg_namelen : c.a[5], sizeof(sockaddr_storage));
  std::vector<iovec> riov;
  if (msg) {
    if (!read_iov(c, mh, &riov)) return Answer::error(EMSGSIZE);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), c.a[2]});
  }
  const int flags = c.arg_int(msg ? 2 : 3);
  if (s.type == SOCK_STREAM || !addr || !alen) {
    if (!addr || !alen) {
      if (!msg) return Answer::cont();
    }
    std::vector<char> data;
    int err = 0;
    if (!gather_iov(c.tid, riov, 1u << 20, &data, &err)) return Answer::error(err);
    return Answer::result(wait_like_caller(
        c, [&] { return static_cast<long>(::send(s.fd.get(), data.data(), data.size(), flags | MSG_NOSIGNAL)); }));
  }
  sockaddr_storage ss;
  if (!read_addr(c, addr, alen, &ss)) return Answer::error(EFAULT);
  if (s.domain == AF_INET && ss.ss_family == AF_UNSPEC && alen >= sizeof(sockaddr_in)) ss.ss_family = AF_INET;
  if (!check_family(s, ss, alen)) return Answer::error(EAFNOSUPPORT);
  std::vector<char> data;
  int err = 0;
  if (!gather_iov(c.tid, riov, vs::kMaxPayload, &data, &err)) return Answer::error(err);
  vs::VsReq q;
  q.op = vs::kSendTo;
  q.id = s.id;
  q.addr = ss;
  q.addrlen = static_cast<uint32_t>(alen);
  q.len = static_cast<uint32_t>(data.size());
  vs::VsRep r = vs.call(q, data.data());
  return r.ret < 0 ? Answer::error(r.err) : Answer::value(r.ret);
}

// recvfrom/recvmsg asking for the sender: the datagram read here, its sender from the stack.
Answer do_recv(VStack& vs, Call& c, VSock& s) {
  const bool msg = c.nr == SYS_recvmsg;
  msghdr mh{};
  if (msg && !read_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::error(EFAULT);
  const uint64_t addr = msg ? reinterpret_cast<uint64_t>(mh.msg_name) : c.a[4];
  std::vector<iovec> riov;
  if (msg) {
    if (!read_iov(c, mh, &riov)) return Answer::error(EMSGSIZE);
  } else {
    riov.push_back({reinterpret_cast<void*>(c.a[1]), c.a[2]});
  }
  size_t total = 0;
  for (const iovec& v : riov) total += std::min<size_t>(v.iov_len, 1u << 20);
  const int flags = c.arg_int(msg ? 2 : 3) & ~MSG_CMSG_CLOEXEC;
  if (flags & MSG_ERRQUEUE) return Answer::error(EAGAIN);  // no ICMP errors queued (socat asks)
  // The whole datagram (for its hash), then what fits.
  std::vector<char> data(s.type == SOCK_STREAM ? std::min<size_t>(total, 1u << 20) : vs::kMaxPayload);
  long got = recv_like_caller(c, s.fd.get(), flags, [&] {
    return static_cast<long>(::recv(s.fd.get(), data.data(), data.size(), flags & ~MSG_TRUNC));
  });
  if (got < 0) return Answer::error(errno);
  size_t n = static_cast<size_t>(got), off = 0;
  for (const iovec& v : riov) {
    if (off >= n) break;
    size_t k = std::min(v.iov_len, n - off);
    if (k && !write_mem(c.tid, reinterpret_cast<uint64_t>(v.iov_base), data.data() + off, k)) return Answer::error(EFAULT);
    off += k;
  }
  vs::VsRep r;
  r.addrlen = 0;
  if (s.type != SOCK_STREAM && addr) {
    vs::VsReq q;
    q.op = vs::kRecvAddr;
    q.id = s.id;
    q.c = (flags & MSG_PEEK) != 0;
    q.id2 = vs::hash(data.data(), n);
    r = vs.call(q);
    if (r.ret < 0) r.addrlen = 0;
    else normalize(s.domain, &r);
  }
  long ret = (s.type != SOCK_STREAM && (flags & MSG_TRUNC)) ? got : static_cast<long>(std::min(n, total));
  if (msg) {
    socklen_t cap = mh.msg_namelen;
    if (addr && cap && r.addrlen && !write_mem(c.tid, addr, &r.addr, std::min<size_t>(cap, r.addrlen)))
      return Answer::error(EFAULT);
    mh.msg_namelen = addr ? r.addrlen : 0;
    // ICMP: the reply's TTL (ping asks for it with IP_RECVTTL and prints it).
    size_t clen = 0;
    if (s.proto && r.ret > 0 && mh.msg_control && mh.msg_controllen >= CMSG_SPACE(sizeof(int))) {
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))]{};
      auto* cm = reinterpret_cast<cmsghdr*>(cbuf);
      cm->cmsg_level = s.domain == AF_INET ? SOL_IP : SOL_IPV6;
      cm->cmsg_type = s.domain == AF_INET ? IP_TTL : IPV6_HOPLIMIT;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      const int ttl = static_cast<int>(r.ret);
      std::memcpy(CMSG_DATA(cm), &ttl, sizeof ttl);
      if (!write_mem(c.tid, reinterpret_cast<uint64_t>(mh.msg_control), cbuf, sizeof cbuf)) return Answer::error(EFAULT);
      clen = sizeof cbuf;
    }
    mh.msg_controllen = clen;
    mh.msg_flags = (s.type != SOCK_STREAM && n > total) ? MSG_TRUNC : 0;
    if (!write_mem(c.tid, c.a[1], &mh, sizeof mh)) return Answer::error(EFAULT);
  } else if (addr) {
    socklen_t cap;
    if (!read_mem(c.tid, c.a[5], &cap, sizeof cap)) return Answer::error(EFAULT);
    if (cap && r.addrlen && !write_mem(c.tid, addr, &r.addr, std::min<size_t>(cap, r.addrlen))) return Answer::error(EFAULT);
    socklen_t l = r.addrlen;
    if (!write_mem(c.tid, c.a[5], &l, sizeof l)) return Answer::error(EFAULT);
  }
  return Answer::value(ret);
}

// getsockopt/setsockopt: SO_TYPE/SO_DOMAIN/SO_PROTOCOL/SO_ERROR say what the view asked for;
// other levels go to the stack (int options).
Answer do_sockopt(VStack& vs, Call& c, VSock& s) {
  const int level = c.arg_int(1), name = c.arg_int(2);
  const bool get = c.nr == SYS_getsockopt;
  auto put_int = [&](int v) -> Answer {
    socklen_t cap;
    if (!read_mem(c.tid, c.a[4], &cap, sizeof cap)) return Answer::error(EFAULT);
    if (static_cast<int>(cap) < 0) return Answer::error(EINVAL);
    socklen_t len = std::min<socklen_t>(cap, sizeof v);
    if (len && !write_mem(c.tid, c.a[3], &v, len)) return Answer::error(EFAULT);
    if (!write_mem(c.tid, c.a[4], &len, sizeof len)) return Answer::error(EFAULT);
    return Answer::value(0);
  };
  if (level == SOL_SOCKET) {
    if (!get && name == SO_LINGER && s.type == SOCK_STREAM) {
      // {1, 0}: the view's close resets the connection (an RST, as Linux's); vu-vstack is told,
      // and the option is set on the view's socket too (getsockopt reads it there).
      linger lg{};
      if (c.a[4] >= sizeof lg && read_mem(c.tid, c.a[3], &lg, sizeof lg)) {
        vs::VsReq q;
        q.op = vs::kSetOpt;
        q.id = s.id;
        q.a = SOL_SOCKET;
        q.b = SO_LINGER;
        q.c = lg.l_onoff && lg.l_linger == 0;
        vs.call(q);
      }
      return Answer::cont();
    }
    if (!get) return Answer::cont();
    switch (name) {
      case SO_TYPE: return put_int(s.type);
      case SO_DOMAIN: return put_int(s.domain);
      case SO_PROTOCOL: return put_int(s.proto ? s.proto : s.type == SOCK_STREAM ? int{IPPROTO_TCP} : int{IPPROTO_UDP});
      case SO_ERROR: {
        // A non-blocking connect's outcome: the view's pair is writable at once, so a program
        // asks after its poll; it is told when the stack knows (waiting as the caller).
        UniqueFd pending;
        int e;
        {
          std::lock_guard<std::mutex> lock(vs.mu);
          VStack::Info& i = vs.socks[s.id];
          pending = std::move(i.connecting);
          e = i.error;
          i.error = 0;
        }
        if (pending) {
          vs::VsRep r;
          if (wait_like_caller(c, [&]() -> long { return VStack::read_reply(pending.get(), &r) ? 0 : -1; }) < 0) {
            const int w = errno;
            std::lock_guard<std::mutex> lock(vs.mu);
            vs.socks[s.id].connecting = std::move(pending);  // asked again after the signal
            return Answer::error(w);
          }
          e = r.ret < 0 ? r.err : 0;
          int native = 0;  // (the view's socket holds ECONNRESET for its reads: told once, here)
          socklen_t nl = sizeof native;
          ::getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &native, &nl);
        } else if (s.type == SOCK_STREAM) {
          // A connection's end (a reset, a timeout) the view has not read yet: its socket holds
          // ECONNRESET (vu-vstack closed its end with the held byte unread); the stack tells what
          // it was. Asked once, as Linux's: the view's next read gives end-of-file.
          int native = 0;
          socklen_t nl = sizeof native;
          if (::getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &native, &nl) == 0 && native) {
            vs::VsReq q;
            q.op = vs::kGetOpt;
            q.id = s.id;
            q.a = SOL_SOCKET;
            q.b = SO_ERROR;
            vs::VsRep r = vs.call(q);
            e = r.ret > 0 ? static_cast<int>(r.ret) : native;
          }
        }
        return put_int(e);
      }
      default: return Answer::cont();
    }
  }
  if (level != IPPROTO_TCP && level != IPPROTO_IP && level != IPPROTO_IPV6 && level != IPPROTO_UDP)
    return Answer::error(ENOPROTOOPT);
  if (get && level == IPPROTO_TCP && s.type == SOCK_STREAM) {
    // What the stack does not answer: the segment size of an Ethernet MTU, and TCP_INFO zeroed
    // but for the state (iperf3 reads both).
    if (name == TCP_MAXSEG) return put_int(1460);
    if (name == TCP_INFO) {
      tcp_info ti{};
      ti.tcpi_state = TCP_ESTABLISHED;
      ti.tcpi_snd_mss = ti.tcpi_rcv_mss = 1460;
      socklen_t cap;
      if (!read_mem(c.tid, c.a[4], &cap, sizeof cap)) return Answer::error(EFAULT);
      if (static_cast<int>(cap) < 0) return Answer::error(EINVAL);
      socklen_t len = std::min<socklen_t>(cap, sizeof ti);
      if (len && !write_mem(c.tid, c.a[3], &ti, len)) return Answer::error(EFAULT);
      if (!write_mem(c.tid, c.a[4], &len, sizeof len)) return Answer::error(EFAULT);
      return Answer::value(0);
    }
  }
  vs::VsReq q;
  q.op = get ? vs::kGetOpt : vs::kSetOpt;
  q.id = s.id;
  q.a = level;
  q.b = name;
  if (!get) {
    int v = 0;
    if (c.a[4] < sizeof v || !read_mem(c.tid, c.a[3], &v, sizeof v)) return Answer::error(EINVAL);
    q.c = v;
  }
  vs::VsRep r = vs.call(q);
  if (r.ret < 0) {
    // Options the stack does not know (TCP_INFO, TCP_CONGESTION…): accepted and ignored when set,
    // as a program would take a kernel that lacks them.
    if (!get && r.err == ENOPROTOOPT) return Answer::value(0);
    return Answer::error(r.err);
  }
  return get ? put_int(static_cast<int>(r.ret)) : Answer::value(0);
}

}  // namespace

namespace {
Result<std::shared_ptr<VStack>> spawn_vstack(const std::string& vnl, bool stats, const std::vector<int>& frames) {
  std::string path = vstack_path();
  if (::access(path.c_str(), X_OK) < 0)
    return Error::sys("VDE stack helper", errno, path)
        .hint("vu-vstack is installed next to vu and runs the TCP/IP stack of pvm views on VDE networks; "
              "reinstall vu, or set VU_VSTACK");
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) return Error::sys("socketpair", errno);
  UniqueFd mine(sp[0]), theirs(sp[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  // Frame links on fds 4…: each moved out of the way first, so that no dup2 overwrites one not
  // yet placed (nor the channel).
  for (size_t i = 0; i < frames.size(); ++i) posix_spawn_file_actions_adddup2(&fa, frames[i], 100 + static_cast<int>(i));
  posix_spawn_file_actions_adddup2(&fa, theirs.get(), 3);
  for (size_t i = 0; i < frames.size(); ++i) {
    posix_spawn_file_actions_adddup2(&fa, 100 + static_cast<int>(i), 4 + static_cast<int>(i));
    posix_spawn_file_actions_addclose(&fa, 100 + static_cast<int>(i));
  }
  std::vector<std::string> args = {"vu-vstack"};
  if (stats) args.push_back("--stats");
  if (frames.empty()) args.push_back(vnl);
  else args.push_back("--frames"), args.push_back(std::to_string(frames.size()));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) return Error::sys("start " + path, rc);
  theirs.reset();
  auto vs = std::make_shared<VStack>();
  vs->channel = std::move(mine);
  vs->pid = pid;
  vs->stats = stats;
  // The first request finds out whether it plugged in (else it has ended: the channel closes).
  if (int e = vstack_link(*vs, false); e) {
    if (!frames.empty()) return Error::make(ErrorKind::kSetup, "the network stack helper (" + path + ") did not start");
    return Error::make(ErrorKind::kSetup, "--net " + vnl + ": the VDE stack helper could not plug into it")
        .hint("check that the switch exists and is yours (vde_switch -s DIR), or the VNL's spelling");
  }
  return vs;
}
}  // namespace

Result<std::shared_ptr<VStack>> vstack_start(const std::string& vnl, bool stats) { return spawn_vstack(vnl, stats, {}); }

Result<std::shared_ptr<VStack>> vstack_start_frames(const std::vector<int>& frames) {
  return spawn_vstack({}, false, frames);
}

pid_t vstack_pid(const VStack& s) { return s.pid; }
void vstack_finish(VStack& s) { s.finish(); }
void vstack_reaped(VStack& s) {
  std::lock_guard<std::mutex> lock(s.mu);
  s.pid = -1;
}

namespace {
// The interface requests (vstack_addr, _mac, _mtu, _link, _route): one link's request, and its
// reply as 0 or an errno.
vs::VsReq link_req(uint32_t op, int link) {
  vs::VsReq q;
  q.id = static_cast<uint64_t>(link);
  q.op = op;
  return q;
}
int link_call(VStack& s, const vs::VsReq& q) {
  vs::VsRep r = s.call(q);
  return r.ret < 0 ? (r.err ? r.err : EINVAL) : 0;
}
// An IPv4 (4 bytes) or IPv6 (16 bytes) address into a request's sockaddr; nullptr: left unset.
void put_ip(sockaddr_storage* ss, int family, const void* ip) {
  ss->ss_family = static_cast<sa_family_t>(family);
  if (!ip) return;
  if (family == AF_INET) std::memcpy(&reinterpret_cast<sockaddr_in*>(ss)->sin_addr, ip, 4);
  else std::memcpy(&reinterpret_cast<sockaddr_in6*>(ss)->sin6_addr, ip, 16);
}
}  // namespace

int vstack_addr(VStack& s, bool add, int family, const void* addr, int prefix, int link) {
  vs::VsReq q = link_req(vs::kAddr, link);
  q.a = add;
  q.b = prefix;
  put_ip(&q.addr, family, addr);
  return link_call(s, q);
}

int vstack_mac(VStack& s, const unsigned char mac[6], int link) {
  vs::VsReq q = link_req(vs::kMac, link);
  std::memcpy(&q.addr, mac, 6);
  return link_call(s, q);
}

int vstack_mtu(VStack& s, int mtu, int link) {
  vs::VsReq q = link_req(vs::kMtu, link);
  q.a = mtu;
  return link_call(s, q);
}

int vstack_link(VStack& s, bool up, int link) {
  vs::VsReq q = link_req(vs::kLink, link);
  q.a = up;
  return link_call(s, q);
}

int vstack_route(VStack& s, bool add, int family, const void* dst, int prefix, const void* gw, int link) {
  vs::VsReq q = link_req(vs::kRoute, link);
  q.a = add;
  q.b = prefix;
  put_ip(&q.addr, family, dst);
  put_ip(&q.addr2, family, gw);
  return link_call(s, q);
}

// What a VDE view traps beyond the network rules of monitor.cc (which trap connect, bind,
// getsockname, getpeername, sendmsg, recvmsg always, sendto/recvfrom with an address, accept
// with one, socket(AF_NETLINK)): socket of the IP families, listen, accept always, the socket
// options (other levels than SOL_SOCKET; SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR of any).
int add_vstack_rules(void* ctx) {
  auto rule = [&](int nr, std::initializer_list<scmp_arg_cmp> args) {
    return seccomp_rule_add_array(ctx, SCMP_ACT_NOTIFY, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  };
  int rc = 0;
  for (int fam : {AF_INET, AF_INET6})
    if ((rc = rule(SYS_socket, {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(fam))})) < 0) return rc;
  for (int nr : {SYS_listen, SYS_accept, SYS_accept4})
    if ((rc = rule(nr, {})) < 0) return rc;
  for (int nr : {SYS_getsockopt, SYS_setsockopt})
    if ((rc = rule(nr, {SCMP_A1(SCMP_CMP_NE, static_cast<uint64_t>(SOL_SOCKET))})) < 0) return rc;
  for (int opt : {SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR})
    if ((rc = rule(SYS_getsockopt, {SCMP_A1(SCMP_CMP_EQ, static_cast<uint64_t>(SOL_SOCKET)),
                                    SCMP_A2(SCMP_CMP_EQ, static_cast<uint64_t>(opt))})) < 0)
      return rc;
  if ((rc = rule(SYS_setsockopt, {SCMP_A1(SCMP_CMP_EQ, static_cast<uint64_t>(SOL_SOCKET)),
                                  SCMP_A2(SCMP_CMP_EQ, static_cast<uint64_t>(SO_LINGER))})) < 0)
    return rc;
  return 0;
}

bool do_vstack(const Config& cfg, Call& c, Answer* out) {
  VStack* vs = cfg.net.vstack.get();
  if (!vs) return false;
  if (c.nr == SYS_socket) {
    if (c.arg_int(0) != AF_INET && c.arg_int(0) != AF_INET6) return false;
    return *out = do_socket(*vs, c), true;
  }
  switch (c.nr) {
    case SYS_connect: case SYS_bind: case SYS_listen: case SYS_getsockname: case SYS_getpeername:
    case SYS_sendto: case SYS_sendmsg: case SYS_recvfrom: case SYS_recvmsg: case SYS_accept: case SYS_accept4:
    case SYS_getsockopt: case SYS_setsockopt:
      break;
    default: return false;
  }
  if (c.nr == SYS_sendmsg || c.nr == SYS_recvmsg) {
    msghdr mh{};
    if (!read_mem(c.tid, c.a[1], &mh, sizeof mh)) return false;
    if (!mh.msg_name || !mh.msg_namelen) return false;  // no address: native (or the unix module)
  }
  VSock s;
  if (!take(*vs, c, c.arg_int(0), &s)) return false;
  switch (c.nr) {
    case SYS_connect: *out = do_connect(*vs, c, s); return true;
    case SYS_bind: case SYS_listen: *out = do_simple(*vs, c, s); return true;
    case SYS_getsockname: case SYS_getpeername: *out = do_name(*vs, c, s); return true;
    case SYS_sendto: case SYS_sendmsg: *out = do_sendto(*vs, c, s); return true;
    case SYS_recvfrom: case SYS_recvmsg: *out = do_recv(*vs, c, s); return true;
    case SYS_accept: case SYS_accept4: *out = do_accept(*vs, c, s); return true;
    default: *out = do_sockopt(*vs, c, s); return true;
  }
}

}  // namespace vu::pvm
