// pvm/inet_echo: ICMP echo stand-ins answered by the monitor, and the sink for datagram
// sockets connected to the view's virtual addresses. The stand-ins here are made as
// echo_socket() makes them (a UDP socket on the view's private loopback address).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "pvm/inet.h"
#include "pvm/inet_echo.h"
#include "tests/unit/pvm_inet_views.h"

namespace vu::pvm {
namespace {

NetConfig view(NetConfig::Kind kind) { return test_view(kind); }

sockaddr_storage to4(const char* a, int port = 0) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  s->sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, a, &s->sin_addr);
  return ss;
}
std::string text4(const sockaddr_storage& ss) {
  auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
  char b[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &s->sin_addr, b, sizeof b);
  return std::string(b) + ":" + std::to_string(ntohs(s->sin_port));
}

UniqueFd standin(const NetConfig& n) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = n.priv;
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int one = 1;
  ::setsockopt(s.get(), IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
  return s;
}

std::vector<char> request(uint16_t seq) {
  std::vector<char> r(8 + 16, 'x');
  r[0] = ICMP_ECHO;
  r[1] = 0;
  r[4] = 0x12, r[5] = 0x34;
  r[6] = static_cast<char>(seq >> 8), r[7] = static_cast<char>(seq);
  return r;
}

uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

struct Got {
  std::vector<unsigned char> data;
  int ttl = -1;
  sockaddr_storage from{};
  socklen_t flen = 0;
};
bool receive(int fd, Got* g) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 1000) != 1) return false;
  g->data.resize(2048);
  char control[256];
  iovec v{g->data.data(), g->data.size()};
  msghdr m{};
  m.msg_name = &g->from;
  m.msg_namelen = sizeof g->from;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &m, 0);
  if (n < 0) return false;
  g->data.resize(static_cast<size_t>(n));
  g->flen = m.msg_namelen;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) std::memcpy(&g->ttl, CMSG_DATA(c), sizeof g->ttl);
  return true;
}

uint16_t sum_of(const std::vector<unsigned char>& d) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < d.size(); i += 2) s += static_cast<uint32_t>(d[i] << 8 | d[i + 1]);
  if (d.size() & 1) s += static_cast<uint32_t>(d.back() << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

TEST(PvmInetEcho, TheViewsAddressesAnswerAsOnNs) {
  NetConfig n = view(NetConfig::kSlirp);
  UniqueFd s = standin(n);
  struct Case {
    const char* to;
    int ttl;
  } cases[] = {{"10.0.2.2", 255}, {"10.0.2.3", 255}, {"10.0.2.100", 64}, {"127.0.0.1", 64}, {"127.1.2.3", 64}};
  uint16_t seq = 1;
  for (const Case& k : cases) {
    std::vector<char> req = request(seq);
    Answer a = echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4(k.to), sizeof(sockaddr_in), req);
    ASSERT_EQ(a.kind, Answer::kValue) << k.to;
    EXPECT_EQ(a.err, 0) << k.to;
    EXPECT_EQ(a.val, static_cast<int64_t>(req.size())) << k.to;
    Got g;
    ASSERT_TRUE(receive(s.get(), &g)) << k.to;
    ASSERT_EQ(g.data.size(), req.size());
    EXPECT_EQ(g.data[0], ICMP_ECHOREPLY);
    EXPECT_EQ(g.data[6] << 8 | g.data[7], seq);                     // the request's sequence
    EXPECT_EQ(g.data[4] << 8 | g.data[5], port_of(s.get()));        // the socket's identifier
    EXPECT_EQ(std::memcmp(g.data.data() + 8, req.data() + 8, req.size() - 8), 0);
    EXPECT_EQ(sum_of(g.data), 0) << "checksum";
    EXPECT_EQ(g.ttl, k.ttl) << k.to;
    ASSERT_TRUE(echo_from(n, &g.from, &g.flen)) << k.to;
    EXPECT_EQ(text4(g.from), std::string(k.to) + ":0");
    ++seq;
  }
}

TEST(PvmInetEcho, ElsewhereIsNotAnsweredAndBadRequestsAreRefused) {
  NetConfig n = view(NetConfig::kSlirp);
  UniqueFd s = standin(n);
  Answer a = echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("192.0.2.1"), sizeof(sockaddr_in), request(1));
  EXPECT_EQ(a.err, 0);
  EXPECT_EQ(a.val, 24);
  Got g;
  EXPECT_FALSE(receive(s.get(), &g));  // taken, not answered, nothing sent
  std::vector<char> reply = request(2);
  reply[0] = ICMP_ECHOREPLY;
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("10.0.2.2"), sizeof(sockaddr_in), reply).err, EINVAL);
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("10.0.2.2"), sizeof(sockaddr_in), std::vector<char>(4)).err, EINVAL);
  // Longer than an IPv4 datagram carries (65535 - 20): EMSGSIZE, as the ping socket says.
  std::vector<char> big = request(3);
  big.resize(65516, 'x');
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("10.0.2.2"), sizeof(sockaddr_in), big).err, EMSGSIZE);
  big.resize(65507);  // the largest a UDP datagram (the answer) carries: answered
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("10.0.2.2"), sizeof(sockaddr_in), big).err, 0);
  ASSERT_TRUE(receive(s.get(), &g));
  // A datagram from anyone else is not shown as an echo's sender.
  UniqueFd other(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in me{};
  socklen_t len = sizeof me;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&me), &len);
  ASSERT_EQ(::sendto(other.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&me), len), 1);
  ASSERT_TRUE(receive(s.get(), &g));
  EXPECT_FALSE(echo_from(n, &g.from, &g.flen));
}

TEST(PvmInetEcho, NoneAnswersItsLoopbackOnly) {
  NetConfig n = view(NetConfig::kNone);
  UniqueFd s = standin(n);
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("10.0.2.2"), sizeof(sockaddr_in), request(1)).err, ENETUNREACH);
  EXPECT_EQ(echo_send(n, s.get(), inode_of(s.get()), AF_INET, to4("127.0.0.1"), sizeof(sockaddr_in), request(2)).err, 0);
  Got g;
  ASSERT_TRUE(receive(s.get(), &g));
  EXPECT_EQ(g.ttl, 64);
}

TEST(PvmInetEcho, DatagramConnectToAVirtualAddressGoesToTheSink) {
  NetConfig n = view(NetConfig::kSlirp);
  UniqueFd u(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  struct stat st;
  ASSERT_EQ(::fstat(u.get(), &st), 0);
  sockaddr_storage dns = to4("10.0.2.3", 1025);
  EXPECT_EQ(echo_sink_connect(n, u.get(), AF_INET, false, st.st_ino, dns, sizeof(sockaddr_in)), 0);
  sockaddr_storage peer{};
  socklen_t plen = 0;
  ASSERT_TRUE(echo_peer(n, st.st_ino, &peer, &plen));
  EXPECT_EQ(text4(peer), "10.0.2.3:1025");
  sockaddr_storage me{};
  socklen_t mlen = sizeof me;
  ASSERT_EQ(::getsockname(u.get(), reinterpret_cast<sockaddr*>(&me), &mlen), 0);
  EXPECT_EQ(text4(me).substr(0, 10), "127.0.0.1:");  // shown as 10.0.2.100 by map_back
  EXPECT_EQ(::send(u.get(), "x", 1, 0), 1);         // dropped by the sink, as libslirp drops it
  echo_forget(n, st.st_ino);
  EXPECT_FALSE(echo_peer(n, st.st_ino, &peer, &plen));
  // Outside the view's network: not the sink's (the handler answers as before).
  EXPECT_EQ(echo_sink_connect(n, u.get(), AF_INET, false, st.st_ino, to4("192.0.2.1", 1), sizeof(sockaddr_in)), -1);
  NetConfig none = view(NetConfig::kNone);
  EXPECT_EQ(echo_sink_connect(none, u.get(), AF_INET, false, st.st_ino, dns, sizeof(sockaddr_in)), -1);
}

}  // namespace
}  // namespace vu::pvm
