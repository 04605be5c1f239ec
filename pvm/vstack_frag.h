// pvm/vstack_frag.h — IPv4 and IPv6 fragment reassembly in vu-vstack, ahead of lwIP.
//
// Why: Debian's lwIP reassembles at most IP_REASS_MAX_PBUFS (10) fragments of a datagram and
// MEMP_NUM_REASSDATA (5) datagrams at once, constants of its build (ip4_frag.c, ip6_frag.c read
// them at compile time: nothing raises them at run time). A UDP datagram of more than ~14 KB
// (over 10 fragments of an Ethernet MTU) was lost on its way into a pvm view, where Linux takes
// 65507 bytes. So vu-vstack's netif input gives every fragment to a Reassembler first, and a
// whole datagram to lwIP's IP layer in one piece (not fragmented, so lwIP's limits do not
// apply).
//
// As the kernel's ipfrag (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c): datagrams keyed by
// (source, destination, identification, protocol) for IPv4 and (source, destination,
// identification) for IPv6; a datagram not complete within kTimeoutMs (Linux's ipfrag_time,
// 30 s) is dropped; all datagrams in progress hold at most kMaxBytes (Linux's
// ipfrag_high_thresh, 4 MiB; the oldest go first) and at most kMaxDatagrams; a fragment
// overlapping another with different bounds drops its datagram (RFC 5722, and Linux for IPv4
// since 4.19), an exact duplicate is ignored; a datagram that would exceed 65535 bytes is
// dropped (ping of death). An IPv6 atomic fragment (offset 0, no more) is given back at once
// without its fragment header (RFC 6946). IPv6's fragment header may follow hop-by-hop,
// routing and destination options headers (the unfragmentable part, taken from the first
// fragment). One difference: the whole IPv6 packet must fit 65535 bytes with its 40-byte
// header (lwIP's pbuf lengths are 16 bits), so an IPv6 datagram carries at most 65487 bytes
// of UDP data where Linux takes 65527.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vu::pvm {

class Reassembler {
 public:
  static constexpr size_t kMaxBytes = 4u << 20;
  static constexpr size_t kMaxDatagrams = 256;
  static constexpr uint64_t kTimeoutMs = 30000;
  static constexpr size_t kMaxPacket = 65535;

  enum Result { kNotFragment, kTaken, kWhole };
  // An IP packet of `len` bytes (from its IP header; Ethernet padding after it is ignored).
  // kNotFragment: give it to the stack as it is. kTaken: a fragment kept (or dropped: bad,
  // overlapping, over the limits). kWhole: *out holds the reassembled packet (IPv4: fragment
  // fields cleared, header checksum recomputed; IPv6: the fragment header removed).
  Result input(const uint8_t* pkt, size_t len, uint64_t now_ms, std::vector<uint8_t>* out);

  size_t bytes() const { return bytes_; }
  size_t datagrams() const { return q_.size(); }
  uint64_t dropped = 0;    // datagrams given up (timeout, overlap, limits, oversize)
  uint64_t completed = 0;  // datagrams reassembled

 private:
  struct Datagram {
    uint64_t born = 0;
    bool v6 = false;
    std::vector<uint8_t> head;  // the first fragment's header (IPv4) / unfragmentable part (IPv6)
    size_t nh_pos = 0;          // IPv6: where the next-header byte to rewrite is in `head`
    uint8_t next = 0;           // IPv6: the fragment header's next header
    std::vector<uint8_t> data;
    std::vector<std::pair<uint32_t, uint32_t>> have;  // received [begin, end), sorted
    uint32_t end = 0;           // the datagram's data length, once the last fragment came
    bool last = false;
    size_t charge = 0;          // what it counts in bytes_
  };
  Result add(const std::string& key, bool v6, const uint8_t* hdr, size_t hdr_len, size_t nh_pos, uint8_t next,
             uint32_t off, bool more, const uint8_t* data, size_t n, uint64_t now, std::vector<uint8_t>* out);
  void drop(std::map<std::string, Datagram>::iterator it);
  void expire(uint64_t now);
  void recharge(Datagram& d);

  std::map<std::string, Datagram> q_;
  size_t bytes_ = 0;
};

}  // namespace vu::pvm
