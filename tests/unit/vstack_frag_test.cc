// vu-vstack's IP fragment reassembly (pvm/vstack_frag.h): in any order, duplicates, overlaps,
// holes, the timeout, the limits, IPv6 with an extension header before its fragment header.
#include "pvm/vstack_frag.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace vu::pvm {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes payload(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
  return b;
}

// IPv4 fragments of `data` (UDP header included in data), `chunk` bytes each (a multiple of 8).
std::vector<Bytes> frag4(const Bytes& data, size_t chunk, uint16_t id) {
  std::vector<Bytes> out;
  for (size_t off = 0; off < data.size(); off += chunk) {
    const size_t n = std::min(chunk, data.size() - off);
    Bytes p(20 + n);
    p[0] = 0x45;
    p[2] = static_cast<uint8_t>((20 + n) >> 8), p[3] = static_cast<uint8_t>(20 + n);
    p[4] = static_cast<uint8_t>(id >> 8), p[5] = static_cast<uint8_t>(id);
    const uint16_t fo = static_cast<uint16_t>((off / 8) | (off + n < data.size() ? 0x2000 : 0));
    p[6] = static_cast<uint8_t>(fo >> 8), p[7] = static_cast<uint8_t>(fo);
    p[8] = 64, p[9] = 17;
    const uint8_t src[4] = {10, 0, 1, 1}, dst[4] = {10, 0, 1, 2};
    std::copy(src, src + 4, p.begin() + 12);
    std::copy(dst, dst + 4, p.begin() + 16);
    std::copy(data.begin() + static_cast<long>(off), data.begin() + static_cast<long>(off + n), p.begin() + 20);
    out.push_back(p);
  }
  return out;
}

// IPv6 fragments with a destination options header (8 bytes) before the fragment header.
std::vector<Bytes> frag6(const Bytes& data, size_t chunk, uint32_t id) {
  std::vector<Bytes> out;
  for (size_t off = 0; off < data.size(); off += chunk) {
    const size_t n = std::min(chunk, data.size() - off);
    Bytes p(40 + 8 + 8 + n);
    p[0] = 0x60;
    const size_t pl = 8 + 8 + n;
    p[4] = static_cast<uint8_t>(pl >> 8), p[5] = static_cast<uint8_t>(pl);
    p[6] = 60, p[7] = 64;
    p[8] = 0xfd, p[23] = 1, p[24] = 0xfd, p[39] = 2;
    p[40] = 44, p[41] = 0;  // destination options: next is the fragment header, 8 bytes
    p[48] = 17;             // the fragment header: next UDP
    const uint16_t fo = static_cast<uint16_t>(off | (off + n < data.size() ? 1 : 0));
    p[50] = static_cast<uint8_t>(fo >> 8), p[51] = static_cast<uint8_t>(fo);
    p[52] = static_cast<uint8_t>(id >> 24), p[55] = static_cast<uint8_t>(id);
    std::copy(data.begin() + static_cast<long>(off), data.begin() + static_cast<long>(off + n), p.begin() + 56);
    out.push_back(p);
  }
  return out;
}

TEST(VstackFrag, NotAFragmentPassesThrough) {
  Reassembler r;
  Bytes p = frag4(payload(100), 200, 1)[0];
  Bytes out;
  EXPECT_EQ(r.input(p.data(), p.size(), 0, &out), Reassembler::kNotFragment);
}

TEST(VstackFrag, Ipv4SixtyKilobytesInAnyOrderWithDuplicates) {
  const Bytes data = payload(60008);
  auto fr = frag4(data, 1480, 7);
  ASSERT_GT(fr.size(), 40u);
  fr.push_back(fr[3]);  // an exact duplicate: ignored
  std::mt19937 rng(1);
  std::shuffle(fr.begin(), fr.end(), rng);
  Reassembler r;
  Bytes out;
  int whole = 0;
  for (const Bytes& f : fr) {
    auto res = r.input(f.data(), f.size(), 0, &out);
    if (res == Reassembler::kWhole) ++whole;
    else EXPECT_EQ(res, Reassembler::kTaken);
  }
  ASSERT_EQ(whole, 1);
  ASSERT_EQ(out.size(), 20 + data.size());
  EXPECT_EQ(Bytes(out.begin() + 20, out.end()), data);
  EXPECT_EQ((out[2] << 8 | out[3]), static_cast<int>(out.size()));
  EXPECT_EQ(out[6] | out[7], 0);
  uint32_t sum = 0;  // the header's checksum is right: it sums to 0xffff
  for (int i = 0; i < 20; i += 2) sum += out[i] << 8 | out[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  EXPECT_EQ(sum, 0xffffu);
  // (the duplicate, when it came after the datagram was whole, starts one of its own, which
  // times out: as Linux's)
  EXPECT_LE(r.datagrams(), 1u);
}

TEST(VstackFrag, Ipv4LargestDatagram) {
  const Bytes data = payload(65515);  // 65507 bytes of UDP data and its header: 65535 with IP's
  auto fr = frag4(data, 1480, 9);
  Reassembler r;
  Bytes out;
  Reassembler::Result res = Reassembler::kTaken;
  for (const Bytes& f : fr) res = r.input(f.data(), f.size(), 0, &out);
  ASSERT_EQ(res, Reassembler::kWhole);
  EXPECT_EQ(out.size(), 65535u);
}

TEST(VstackFrag, Ipv4OversizeIsDropped) {
  auto fr = frag4(payload(8), 8, 3);
  Bytes last = fr[0];
  last[6] = 0x1f, last[7] = 0xff;  // offset 65528, last: past 65535
  Reassembler r;
  Bytes out;
  EXPECT_EQ(r.input(last.data(), last.size(), 0, &out), Reassembler::kTaken);
  EXPECT_EQ(r.datagrams(), 0u);
  EXPECT_EQ(r.dropped, 1u);
}

TEST(VstackFrag, OverlapDropsTheDatagram) {
  auto fr = frag4(payload(4000), 1000 / 8 * 8, 5);
  Reassembler r;
  Bytes out;
  ASSERT_EQ(r.input(fr[0].data(), fr[0].size(), 0, &out), Reassembler::kTaken);
  Bytes over = fr[1];
  over[7] = static_cast<uint8_t>(over[7] - 1);  // 8 bytes earlier: overlaps the first
  EXPECT_EQ(r.input(over.data(), over.size(), 0, &out), Reassembler::kTaken);
  EXPECT_EQ(r.datagrams(), 0u);
  for (size_t i = 1; i < fr.size(); ++i) EXPECT_NE(r.input(fr[i].data(), fr[i].size(), 0, &out), Reassembler::kWhole);
}

TEST(VstackFrag, TimeoutAndHole) {
  auto fr = frag4(payload(3000), 1480, 11);
  Reassembler r;
  Bytes out;
  r.input(fr[0].data(), fr[0].size(), 0, &out);
  r.input(fr[2].data(), fr[2].size(), 0, &out);  // a hole: fr[1]
  EXPECT_EQ(r.datagrams(), 1u);
  // fr[1] after the timeout: the datagram is gone, this one starts a new one.
  EXPECT_EQ(r.input(fr[1].data(), fr[1].size(), Reassembler::kTimeoutMs + 1, &out), Reassembler::kTaken);
  EXPECT_EQ(r.datagrams(), 1u);
  EXPECT_EQ(r.dropped, 1u);
}

TEST(VstackFrag, MemoryIsBounded) {
  Reassembler r;
  Bytes out;
  // Many datagrams each missing their last fragment: held bytes stay under the bound.
  for (uint16_t id = 0; id < 2000; ++id) {
    auto fr = frag4(payload(6000), 1480, id);
    for (size_t i = 0; i + 1 < fr.size(); ++i) r.input(fr[i].data(), fr[i].size(), id, &out);
    ASSERT_LE(r.bytes(), Reassembler::kMaxBytes);
    ASSERT_LE(r.datagrams(), Reassembler::kMaxDatagrams);
  }
  EXPECT_GT(r.dropped, 0u);
}

TEST(VstackFrag, Ipv6WithDestinationOptions) {
  const Bytes data = payload(60008);
  auto fr = frag6(data, 1448, 0x01020304);
  std::reverse(fr.begin(), fr.end());
  Reassembler r;
  Bytes out;
  Reassembler::Result res = Reassembler::kTaken;
  for (const Bytes& f : fr) res = r.input(f.data(), f.size(), 0, &out);
  ASSERT_EQ(res, Reassembler::kWhole);
  ASSERT_EQ(out.size(), 48 + data.size());
  EXPECT_EQ(out[6], 60);   // the base header's next: still the destination options
  EXPECT_EQ(out[40], 17);  // whose next is now UDP (the fragment header is gone)
  EXPECT_EQ((out[4] << 8 | out[5]), static_cast<int>(out.size() - 40));
  EXPECT_EQ(Bytes(out.begin() + 48, out.end()), data);
}

TEST(VstackFrag, Ipv6AtomicFragment) {
  auto fr = frag6(payload(100), 200, 5);
  ASSERT_EQ(fr.size(), 1u);
  Reassembler r;
  Bytes out;
  ASSERT_EQ(r.input(fr[0].data(), fr[0].size(), 0, &out), Reassembler::kWhole);
  EXPECT_EQ(out.size(), 48u + 100u);
  EXPECT_EQ(out[40], 17);
}

}  // namespace
}  // namespace vu::pvm
