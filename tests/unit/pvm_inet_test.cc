// pvm/inet: the view's network on the pvm backend — the address translation, and the handlers
// serving socket calls made by this very process (its memory is the "caller's").
#include <arpa/inet.h>
#include "pvm/nlmsg.h"
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "pvm/call.h"
#include "pvm/inet.h"
#include "tests/unit/pvm_inet_views.h"
#include "pvm/net.h"

namespace vu::pvm {
namespace {

sockaddr_in in4(const char* a, int port) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, a, &s.sin_addr);
  return s;
}
sockaddr_in6 in6(const char* a, int port) {
  sockaddr_in6 s{};
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET6, a, &s.sin6_addr);
  return s;
}
std::string text(const sockaddr_in6& s) {  // "ADDR:PORT" of either family
  char b[INET6_ADDRSTRLEN] = "?";
  if (s.sin6_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&s);
    ::inet_ntop(AF_INET, &v4->sin_addr, b, sizeof b);
    return std::string(b) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  ::inet_ntop(AF_INET6, &s.sin6_addr, b, sizeof b);
  return "[" + std::string(b) + "]:" + std::to_string(ntohs(s.sin6_port));
}
std::string priv_text(const NetConfig& n) {
  char b[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &n.priv, b, sizeof b);
  return b;
}

NetConfig slirp(bool host_loopback = false) { return test_view(NetConfig::kSlirp, host_loopback); }

TEST(PvmInet, PrivateLoopbackIsPerViewAndNotTheHosts) {
  NetConfig a = slirp(), b = slirp();
  EXPECT_EQ(ntohl(a.priv.s_addr) >> 24, 127u);
  EXPECT_NE(ntohl(a.priv.s_addr) >> 16, 0x7f00u);  // clear of 127.0.x.y
  EXPECT_NE(a.priv.s_addr, b.priv.s_addr);          // (1 in 8 million to fail by chance)
  EXPECT_EQ(a.mac[0] & 3, 2);                        // unicast, locally administered
}

TEST(PvmInet, DestinationsOfConnectAndSendto) {
  NetConfig n = slirp();
  sockaddr_in lo = in4("127.0.0.1", 80), own = in4("10.0.2.100", 80), gw = in4("10.0.2.2", 8000),
              dns = in4("10.0.2.3", 53), lan = in4("10.0.2.7", 1), out = in4("192.0.2.1", 443);
  Mapping m = map_dest(n, &lo, sizeof lo, AF_INET);
  ASSERT_EQ(m.route, Route::kMapped);
  EXPECT_TRUE(m.own);
  EXPECT_EQ(text(m.host), priv_text(n) + ":80");
  EXPECT_EQ(text(map_dest(n, &own, sizeof own, AF_INET).host), priv_text(n) + ":80");
  EXPECT_EQ(map_dest(n, &gw, sizeof gw, AF_INET).err, ENETUNREACH);  // without allow-host-loopback
  EXPECT_EQ(map_dest(n, &lan, sizeof lan, AF_INET).err, EHOSTUNREACH);
  EXPECT_EQ(map_dest(n, &out, sizeof out, AF_INET).route, Route::kNative);
  n.have_host_dns = true;
  ::inet_pton(AF_INET, "127.0.0.53", &n.host_dns);
  EXPECT_EQ(text(map_dest(n, &dns, sizeof dns, AF_INET).host), "127.0.0.53:53");
  NetConfig h = slirp(true);
  Mapping g = map_dest(h, &gw, sizeof gw, AF_INET);
  EXPECT_EQ(text(g.host), "127.0.0.1:8000");
  EXPECT_FALSE(g.own);
  // IPv6: the view's ::1 is the private address, v4-mapped; fd00::2 the host's ::1.
  sockaddr_in6 lo6 = in6("::1", 80), gw6 = in6("fd00::2", 80);
  EXPECT_EQ(text(map_dest(n, &lo6, sizeof lo6, AF_INET6).host), "[::ffff:" + priv_text(n) + "]:80");
  EXPECT_EQ(text(map_dest(h, &gw6, sizeof gw6, AF_INET6).host), "[::1]:80");
  // --net none: the view's loopback only.
  NetConfig none;
  none.kind = NetConfig::kNone;
  ASSERT_EQ(net_setup(none), "");
  EXPECT_EQ(map_dest(none, &lo, sizeof lo, AF_INET).route, Route::kMapped);
  EXPECT_EQ(map_dest(none, &own, sizeof own, AF_INET).err, ENETUNREACH);
  EXPECT_EQ(map_dest(none, &out, sizeof out, AF_INET).err, ENETUNREACH);
  // The host's network: nothing translated.
  NetConfig host;
  EXPECT_EQ(map_dest(host, &lo, sizeof lo, AF_INET).route, Route::kNative);
}

TEST(PvmInet, BindAndForwardedPorts) {
  NetConfig n = slirp();
  sockaddr_in any = in4("0.0.0.0", 8000), lo = in4("127.0.0.1", 8000), other = in4("192.0.2.1", 1);
  EXPECT_EQ(text(map_bind(n, &any, sizeof any, AF_INET, SOCK_STREAM).host), priv_text(n) + ":8000");
  EXPECT_EQ(text(map_bind(n, &lo, sizeof lo, AF_INET, SOCK_STREAM).host), priv_text(n) + ":8000");
  EXPECT_EQ(map_bind(n, &other, sizeof other, AF_INET, SOCK_STREAM).err, EADDRNOTAVAIL);
  sockaddr_in any0 = in4("0.0.0.0", 0);  // a client picking a source port: the host's wildcard
  EXPECT_EQ(text(map_bind(n, &any0, sizeof any0, AF_INET, SOCK_DGRAM).host), "0.0.0.0:0");
  // -p: vu holds the host port from the start; a second holder fails with the port named.
  NetConfig f;
  f.kind = NetConfig::kSlirp;
  NetConfig::Forward fw;
  ::inet_pton(AF_INET, "127.0.0.1", &fw.host_addr);
  fw.view_port = 80;
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in zero = in4("127.0.0.1", 0);
  ASSERT_EQ(::bind(probe.get(), reinterpret_cast<sockaddr*>(&zero), sizeof zero), 0);
  socklen_t len = sizeof zero;
  ASSERT_EQ(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&zero), &len), 0);
  fw.host_port = ntohs(zero.sin_port);
  f.forwards.push_back(fw);
  std::string e = net_setup(f);
  EXPECT_NE(e.find("127.0.0.1 port " + std::to_string(fw.host_port) + "/tcp: Address already in use"), std::string::npos) << e;
  probe.reset();
  NetConfig g = f;
  g.state.reset();
  ASSERT_EQ(net_setup(g), "");
  sockaddr_in v80 = in4("0.0.0.0", 80);
  Mapping m = map_bind(g, &v80, sizeof v80, AF_INET, SOCK_STREAM);
  EXPECT_EQ(text(m.host), "127.0.0.1:" + std::to_string(fw.host_port));
  EXPECT_EQ(map_bind(g, &v80, sizeof v80, AF_INET, SOCK_DGRAM).err, 0);  // /tcp only: not forwarded
  // The view reaching its own forwarded port: where its socket is, at the host address.
  sockaddr_in self80 = in4("127.0.0.1", 80);
  EXPECT_EQ(text(map_dest(g, &self80, sizeof self80, AF_INET, false, SOCK_STREAM).host),
            "127.0.0.1:" + std::to_string(fw.host_port));
  EXPECT_EQ(text(map_dest(g, &self80, sizeof self80, AF_INET, false, SOCK_DGRAM).host), priv_text(g) + ":80");
}

TEST(PvmInet, HostAddressesBackInViewTerms) {
  NetConfig n = slirp();
  sockaddr_in p{};
  p.sin_family = AF_INET;
  p.sin_addr = n.priv;
  p.sin_port = htons(5);
  unsigned len = sizeof p;
  map_back(n, &p, &len, true, true);
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&p)), "127.0.0.1:5");
  sockaddr_in hostlo = in4("127.0.0.1", 9);
  map_back(n, &hostlo, &len, false, false);
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&hostlo)), "10.0.2.2:9");  // the host, seen through the gateway
  sockaddr_in local = in4("127.0.0.1", 40000);
  map_back(n, &local, &len, true, false);
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&local)), "10.0.2.100:40000");
  sockaddr_in6 lo6 = in6("::1", 7);
  len = sizeof lo6;
  map_back(n, &lo6, &len, false, false);
  EXPECT_EQ(text(lo6), "[fd00::2]:7");
  // On an IPv6 socket the private address (v4-mapped) is the view's ::1.
  sockaddr_in6 own6{};
  own6.sin6_family = AF_INET6;
  own6.sin6_addr.s6_addr[10] = own6.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(own6.sin6_addr.s6_addr + 12, &n.priv, 4);
  own6.sin6_port = htons(8);
  len = sizeof own6;
  map_back(n, &own6, &len, true, false);
  EXPECT_EQ(text(own6), "[::1]:8");
  // IPV6_V6ONLY: the view's ::1 is the host's (a v4-mapped address is refused on such sockets).
  sockaddr_in6 v6 = in6("::1", 80);
  EXPECT_EQ(text(map_dest(n, &v6, sizeof v6, AF_INET6, true).host), "[::1]:80");
  EXPECT_EQ(text(map_bind(n, &v6, sizeof v6, AF_INET6, SOCK_STREAM, true).host), "[::1]:80");
  len = sizeof v6;
  map_back(n, &v6, &len, false, true);
  EXPECT_EQ(text(v6), "[::1]:80");
}

// ---- the handlers, on this process's own calls ----

Call self_call(int nr, std::initializer_list<uint64_t> args) {
  Call c{0, static_cast<pid_t>(::syscall(SYS_gettid)), nr, {}};
  int i = 0;
  for (uint64_t a : args) c.a[i++] = a;
  return c;
}
uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }
void quiet_wake() {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  ::sigaction(wake_signal(), &sa, nullptr);
}

// A slirp view: its server sockets, bound by the monitor (do_inet's bind) as the view asked,
// and its rtnetlink sockets.
class PvmInetView : public ::testing::Test {
 protected:
  void SetUp() override {
    quiet_wake();
    cfg.net = slirp();
  }
  // srv: a socket of TYPE bound to VIEW_ADDR:0 through do_inet; host: its address on the host.
  void bind_server(int type, const char* view_addr) {
    srv.reset(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(srv);
    sockaddr_in to = in4(view_addr, 0);
    Answer a;
    Call b = self_call(SYS_bind, {static_cast<uint64_t>(srv.get()), addr(&to), sizeof to});
    ASSERT_TRUE(do_inet(cfg, b, &a));
    ASSERT_EQ(a.err, 0);
    socklen_t hl = sizeof host;
    ASSERT_EQ(::getsockname(srv.get(), reinterpret_cast<sockaddr*>(&host), &hl), 0);
  }
  // *sock: the view's NETLINK_ROUTE socket, as do_inet's socket() gives it.
  void rtnetlink_socket(UniqueFd* sock) {
    Call s = self_call(SYS_socket, {AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE});
    Answer a;
    ASSERT_TRUE(do_inet(cfg, s, &a));
    ASSERT_EQ(a.kind, Answer::kFd) << a.err;
    *sock = std::move(a.fd);
  }
  Config cfg;
  UniqueFd srv;
  sockaddr_in host{};
};

TEST_F(PvmInetView, LoopbackConversationShowsTheViewsAddresses) {
  ASSERT_NO_FATAL_FAILURE(bind_server(SOCK_STREAM, "0.0.0.0"));
  ASSERT_EQ(::listen(srv.get(), 4), 0);
  Answer a;
  EXPECT_EQ(host.sin_addr.s_addr, cfg.net.priv.s_addr);  // on the host: the private address
  sockaddr_in view{};
  socklen_t vl = sizeof view;
  Call n = self_call(SYS_getsockname, {static_cast<uint64_t>(srv.get()), addr(&view), addr(&vl)});
  ASSERT_TRUE(do_inet(cfg, n, &a));
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&view)), "0.0.0.0:" + std::to_string(ntohs(host.sin_port)));
  // A client of the view connects to its 127.0.0.1.
  UniqueFd cli(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to = in4("127.0.0.1", ntohs(host.sin_port));
  Call cc = self_call(SYS_connect, {static_cast<uint64_t>(cli.get()), addr(&to), sizeof to});
  ASSERT_TRUE(do_inet(cfg, cc, &a));
  ASSERT_EQ(a.err, 0);
  UniqueFd acc(::accept4(srv.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(acc);
  sockaddr_in peer{};
  socklen_t pl = sizeof peer;
  Call gp = self_call(SYS_getpeername, {static_cast<uint64_t>(acc.get()), addr(&peer), addr(&pl)});
  ASSERT_TRUE(do_inet(cfg, gp, &a));
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&peer)).rfind("127.0.0.1:", 0), 0u);
  // The bytes go natively.
  ASSERT_EQ(::write(cli.get(), "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(::read(acc.get(), buf, 2), 2);
}

TEST_F(PvmInetView, UdpSenderIsShownInViewTerms) {
  ASSERT_NO_FATAL_FAILURE(bind_server(SOCK_DGRAM, "127.0.0.1"));
  UniqueFd cli(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  Answer a;
  sockaddr_in to = in4("10.0.2.100", ntohs(host.sin_port));
  Call s = self_call(SYS_sendto, {static_cast<uint64_t>(cli.get()), addr("ping"), 4, 0, addr(&to), sizeof to});
  ASSERT_TRUE(do_inet(cfg, s, &a));
  ASSERT_EQ(a.val, 4);
  char buf[16];
  sockaddr_in from{};
  socklen_t fl = sizeof from;
  Call r = self_call(SYS_recvfrom, {static_cast<uint64_t>(srv.get()), addr(buf), sizeof buf, 0, addr(&from), addr(&fl)});
  ASSERT_TRUE(do_inet(cfg, r, &a));
  ASSERT_EQ(a.val, 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&from)).rfind("127.0.0.1:", 0), 0u);
}

TEST_F(PvmInetView, SendmsgAndRecvmsgNamesAreTranslated) {
  ASSERT_NO_FATAL_FAILURE(bind_server(SOCK_DGRAM, "0.0.0.0"));
  UniqueFd cli(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  Answer a;
  sockaddr_in to = in4("127.0.0.1", ntohs(host.sin_port));
  char data[] = "two parts";
  iovec out_iov[2] = {{data, 4}, {data + 4, 5}};
  msghdr out{};
  out.msg_name = &to;
  out.msg_namelen = sizeof to;
  out.msg_iov = out_iov;
  out.msg_iovlen = 2;
  Call s = self_call(SYS_sendmsg, {static_cast<uint64_t>(cli.get()), addr(&out), 0});
  ASSERT_TRUE(do_inet(cfg, s, &a));
  ASSERT_EQ(a.val, 9) << a.err;
  char buf[32] = {};
  sockaddr_in from{};
  iovec in_iov = {buf, sizeof buf};
  msghdr in{};
  in.msg_name = &from;
  in.msg_namelen = sizeof from;
  in.msg_iov = &in_iov;
  in.msg_iovlen = 1;
  Call r = self_call(SYS_recvmsg, {static_cast<uint64_t>(srv.get()), addr(&in), 0});
  ASSERT_TRUE(do_inet(cfg, r, &a));
  ASSERT_EQ(a.val, 9) << a.err;
  EXPECT_EQ(std::string(buf, 9), "two parts");
  EXPECT_EQ(in.msg_namelen, sizeof from);
  EXPECT_EQ(text(*reinterpret_cast<sockaddr_in6*>(&from)).rfind("127.0.0.1:", 0), 0u);
  // Without a name the call is the kernel's (CONTINUE): the data path is not the monitor's.
  msghdr plain{};
  plain.msg_iov = &in_iov;
  plain.msg_iovlen = 1;
  Call native = self_call(SYS_recvmsg, {static_cast<uint64_t>(srv.get()), addr(&plain), 0});
  ASSERT_TRUE(do_inet(cfg, native, &a));
  EXPECT_EQ(a.kind, Answer::kContinue);
}

TEST_F(PvmInetView, RtnetlinkDumpsTheViewsInterfaces) {
  UniqueFd sock;  // the view's descriptor
  ASSERT_NO_FATAL_FAILURE(rtnetlink_socket(&sock));
  const int fd = sock.get();
  Answer a;
  char req[256];
  nlmsghdr* h = nlm_nlmsg_put_header(req);
  h->nlmsg_type = RTM_GETADDR;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  h->nlmsg_seq = 42;
  auto* ifa = static_cast<ifaddrmsg*>(nlm_nlmsg_put_extra_header(h, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  Call send = self_call(SYS_sendto, {static_cast<uint64_t>(fd), addr(req), h->nlmsg_len, 0, addr(&kernel), sizeof kernel});
  ASSERT_TRUE(do_inet(cfg, send, &a));
  ASSERT_EQ(a.val, static_cast<int64_t>(h->nlmsg_len));
  std::string addrs;
  bool done = false;
  for (int i = 0; i < 8 && !done; ++i) {
    char buf[16384];
    sockaddr_nl from{};
    iovec iov{buf, sizeof buf};
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    Call r = self_call(SYS_recvmsg, {static_cast<uint64_t>(fd), addr(&mh), 0});
    ASSERT_TRUE(do_inet(cfg, r, &a));
    ASSERT_GT(a.val, 0) << a.err;
    EXPECT_EQ(from.nl_pid, 0u);  // as from the kernel
    int left = static_cast<int>(a.val);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); nlm_nlmsg_ok(m, left); m = nlm_nlmsg_next(m, &left)) {
      EXPECT_EQ(m->nlmsg_seq, 42u);
      if (m->nlmsg_type == NLMSG_DONE) done = true;
      if (m->nlmsg_type != RTM_NEWADDR) continue;
      const char* tail = static_cast<const char*>(nlm_nlmsg_get_payload_tail(m));
      for (auto* at = static_cast<const nlattr*>(nlm_nlmsg_get_payload_offset(m, sizeof(ifaddrmsg)));
           nlm_attr_ok(at, static_cast<int>(tail - reinterpret_cast<const char*>(at))); at = nlm_attr_next(at)) {
        if (nlm_attr_get_type(at) != IFA_LOCAL) continue;
        char t[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, nlm_attr_get_payload(at), t, sizeof t);
        addrs += std::string(t) + " ";
      }
    }
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(addrs, "127.0.0.1 10.0.2.100 ");
  // A change is refused as in an ns view without capabilities.
  h->nlmsg_type = RTM_NEWADDR;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
  ASSERT_EQ(::send(fd, req, h->nlmsg_len, 0), static_cast<ssize_t>(h->nlmsg_len));  // natively: to the server
  char buf[1024];
  ssize_t got = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(got, 0);
  auto* m = reinterpret_cast<const nlmsghdr*>(buf);
  ASSERT_EQ(m->nlmsg_type, NLMSG_ERROR);
  EXPECT_EQ(static_cast<const nlmsgerr*>(nlm_nlmsg_get_payload(m))->error, -EPERM);
}

// The server's NETLINK_USERSOCK address is open to every local process: only the view's own
// rtnetlink sockets are answered (a review finding: any local user could ask it).
TEST_F(PvmInetView, RtnetlinkAnswersOnlyTheViewsSockets) {
  UniqueFd view;
  ASSERT_NO_FATAL_FAILURE(rtnetlink_socket(&view));
  sockaddr_nl server{};
  socklen_t len = sizeof server;
  ASSERT_EQ(::getpeername(view.get(), reinterpret_cast<sockaddr*>(&server), &len), 0);
  ASSERT_NE(server.nl_pid, 0u);
  char req[256];
  nlmsghdr* h = nlm_nlmsg_put_header(req);
  h->nlmsg_type = RTM_GETLINK;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  h->nlmsg_seq = 7;
  static_cast<ifinfomsg*>(nlm_nlmsg_put_extra_header(h, sizeof(ifinfomsg)))->ifi_family = AF_UNSPEC;
  auto answered = [&](int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 500) == 1;
  };
  UniqueFd outsider(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK));
  ASSERT_TRUE(outsider);
  ASSERT_EQ(::sendto(outsider.get(), req, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&server), sizeof server),
            static_cast<ssize_t>(h->nlmsg_len));
  EXPECT_FALSE(answered(outsider.get()));  // dropped
  ASSERT_EQ(::send(view.get(), req, h->nlmsg_len, 0), static_cast<ssize_t>(h->nlmsg_len));
  EXPECT_TRUE(answered(view.get()));  // the view's own socket is served
}

}  // namespace
}  // namespace vu::pvm
