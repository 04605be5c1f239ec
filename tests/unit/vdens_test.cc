// Unit tests for vdens/ack_coalesce: which frames are pure ACKs, and what the coalescer keeps.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "vdens/ack_coalesce.h"

namespace vu::vdens {
namespace {

struct Seg {
  bool v6 = false;
  uint16_t sport = 5201, dport = 40000;
  uint32_t ack = 1000;
  uint16_t window = 65535;
  uint8_t flags = 0x10;  // ACK
  int options = 0;       // bytes of TCP options
  int payload = 0;
};

void put16(std::vector<uint8_t>& f, size_t at, uint32_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}
void put32(std::vector<uint8_t>& f, size_t at, uint32_t v) {
  put16(f, at, v >> 16);
  put16(f, at + 2, v & 0xffff);
}

std::vector<uint8_t> frame(const Seg& s) {
  const size_t ip = 14, iph = s.v6 ? 40 : 20, tcp = ip + iph, tcph = 20 + static_cast<size_t>(s.options);
  std::vector<uint8_t> f(tcp + tcph + static_cast<size_t>(s.payload), 0);
  put16(f, 12, s.v6 ? 0x86dd : 0x0800);
  if (s.v6) {
    f[ip] = 0x60;
    put16(f, ip + 4, static_cast<uint32_t>(tcph + static_cast<size_t>(s.payload)));
    f[ip + 6] = 6;
    f[ip + 8 + 15] = 1;   // source ::1
    f[ip + 24 + 15] = 2;  // destination ::2
  } else {
    f[ip] = 0x45;
    put16(f, ip + 2, static_cast<uint32_t>(iph + tcph + static_cast<size_t>(s.payload)));
    f[ip + 9] = 6;
    put32(f, ip + 12, 0x0a000202);
    put32(f, ip + 16, 0x0a000264);
  }
  put16(f, tcp, s.sport);
  put16(f, tcp + 2, s.dport);
  put32(f, tcp + 8, s.ack);
  f[tcp + 12] = static_cast<uint8_t>((tcph / 4) << 4);
  f[tcp + 13] = s.flags;
  put16(f, tcp + 14, s.window);
  return f;
}

// What flush() writes: the ack numbers, in order.
std::vector<uint32_t> flushed(AckCoalescer& c) {
  std::vector<uint32_t> out;
  c.flush([&](const uint8_t* f, size_t n) {
    PureAck id;
    EXPECT_TRUE(parse_pure_ack(f, n, &id));
    out.push_back(id.ack);
  });
  return out;
}

TEST(PureAck, RecognisesOnlyDatalessAcksWithoutOptions) {
  PureAck id;
  auto ok = frame({});
  EXPECT_TRUE(parse_pure_ack(ok.data(), ok.size(), &id));
  EXPECT_EQ(id.ack, 1000u);
  EXPECT_EQ(id.window, 65535);
  Seg v6;
  v6.v6 = true;
  auto f6 = frame(v6);
  EXPECT_TRUE(parse_pure_ack(f6.data(), f6.size(), &id));
  for (Seg s : {Seg{.payload = 1}, Seg{.flags = 0x12}, Seg{.flags = 0x11}, Seg{.flags = 0x14},
                Seg{.options = 12}, Seg{.v6 = true, .payload = 100}}) {
    auto f = frame(s);
    EXPECT_FALSE(parse_pure_ack(f.data(), f.size(), &id)) << "flags " << int(s.flags);
  }
  auto udp = frame({});
  udp[14 + 9] = 17;
  EXPECT_FALSE(parse_pure_ack(udp.data(), udp.size(), &id));
  auto frag = frame({});
  frag[14 + 6] = 0x20;  // more fragments
  EXPECT_FALSE(parse_pure_ack(frag.data(), frag.size(), &id));
  EXPECT_FALSE(parse_pure_ack(ok.data(), 40, &id));  // a runt
}

TEST(AckCoalescer, NewerAckReplacesTheHeldOne) {
  AckCoalescer c;
  auto a = frame({.ack = 1000}), b = frame({.ack = 33767});
  EXPECT_TRUE(c.hold(a.data(), a.size()));
  EXPECT_TRUE(c.hold(b.data(), b.size()));
  EXPECT_EQ(c.held(), 1u);
  EXPECT_EQ(c.replaced(), 1u);
  EXPECT_EQ(flushed(c), std::vector<uint32_t>{33767});
  EXPECT_EQ(c.held(), 0u);
}

TEST(AckCoalescer, SequenceWrapCountsAsNewer) {
  AckCoalescer c;
  auto a = frame({.ack = 0xfffffff0u}), b = frame({.ack = 0x10});
  c.hold(a.data(), a.size());
  c.hold(b.data(), b.size());
  EXPECT_EQ(flushed(c), std::vector<uint32_t>{0x10});
}

TEST(AckCoalescer, DuplicateAcksAreAllKept) {
  AckCoalescer c;
  auto a = frame({.ack = 5000});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.hold(a.data(), a.size()));
  EXPECT_EQ(flushed(c), (std::vector<uint32_t>{5000, 5000, 5000}));
  EXPECT_EQ(c.replaced(), 0u);
}

TEST(AckCoalescer, WindowUpdateReplaces) {
  AckCoalescer c;
  auto a = frame({.ack = 5000, .window = 100}), b = frame({.ack = 5000, .window = 65535});
  c.hold(a.data(), a.size());
  c.hold(b.data(), b.size());
  EXPECT_EQ(c.held(), 1u);
  PureAck id;
  c.flush([&](const uint8_t* f, size_t n) { ASSERT_TRUE(parse_pure_ack(f, n, &id)); });
  EXPECT_EQ(id.window, 65535);
}

TEST(AckCoalescer, OlderAckIsKeptAfterTheNewer) {
  AckCoalescer c;
  auto a = frame({.ack = 9000}), b = frame({.ack = 8000});
  c.hold(a.data(), a.size());
  c.hold(b.data(), b.size());
  EXPECT_EQ(flushed(c), (std::vector<uint32_t>{9000, 8000}));
}

TEST(AckCoalescer, ConnectionsAreSeparateAndKeepTheirOrder) {
  AckCoalescer c;
  auto a1 = frame({.dport = 1, .ack = 10}), b1 = frame({.dport = 2, .ack = 20});
  auto a2 = frame({.dport = 1, .ack = 11}), v6 = frame({.v6 = true, .dport = 1, .ack = 12});
  for (auto* f : {&a1, &b1, &a2, &v6}) EXPECT_TRUE(c.hold(f->data(), f->size()));
  EXPECT_EQ(flushed(c), (std::vector<uint32_t>{11, 20, 12}));
}

TEST(AckCoalescer, RefusesWhatItDoesNotHold) {
  AckCoalescer c;
  auto data = frame({.payload = 10});
  EXPECT_FALSE(c.hold(data.data(), data.size()));
  for (uint16_t p = 0; p < AckCoalescer::kMaxHeld; ++p) {
    auto f = frame({.dport = p});
    EXPECT_TRUE(c.hold(f.data(), f.size()));
  }
  auto more = frame({.dport = 999});
  EXPECT_FALSE(c.hold(more.data(), more.size()));  // full: the pump flushes, then writes it
  auto same = frame({.dport = 3, .ack = 2000});
  EXPECT_TRUE(c.hold(same.data(), same.size()));  // replacing needs no room
}

}  // namespace
}  // namespace vu::vdens
