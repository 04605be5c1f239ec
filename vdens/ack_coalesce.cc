#include "vdens/ack_coalesce.h"

#include <cstring>

namespace vu::vdens {

namespace {

constexpr size_t kEth = 14;
constexpr uint8_t kTcpAck = 0x10;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// The TCP header at `tcp` (20 bytes readable) of a segment without data: pure ACK?
bool tcp_pure_ack(const uint8_t* tcp, PureAck* out) {
  if ((tcp[12] >> 4) != 5) return false;  // options: leave such segments alone
  if ((tcp[13] & 0x3f) != kTcpAck) return false;  // exactly ACK (ECN bits aside)
  out->ack = be32(tcp + 8);
  out->window = be16(tcp + 14);
  std::memcpy(out->key + out->key_len, tcp, 4);  // ports
  out->key_len += 4;
  return true;
}

}  // namespace

bool parse_pure_ack(const uint8_t* f, size_t len, PureAck* out) {
  if (len < kEth + 20) return false;
  const uint16_t type = be16(f + 12);
  const uint8_t* ip = f + kEth;
  out->key_len = 0;
  if (type == 0x0800) {
    if (ip[0] != 0x45 || ip[9] != 6) return false;  // IPv4 without options, TCP
    if (be16(ip + 6) & 0x3fff) return false;        // a fragment
    if (be16(ip + 2) != 40 || len < kEth + 40) return false;  // IP + TCP headers, no data
    out->key[out->key_len++] = 4;
    std::memcpy(out->key + out->key_len, ip + 12, 8);
    out->key_len += 8;
    return tcp_pure_ack(ip + 20, out);
  }
  if (type == 0x86dd) {
    if ((ip[0] >> 4) != 6 || ip[6] != 6) return false;  // TCP right after the IPv6 header
    if (be16(ip + 4) != 20 || len < kEth + 60) return false;
    out->key[out->key_len++] = 6;
    std::memcpy(out->key + out->key_len, ip + 8, 32);
    out->key_len += 32;
    return tcp_pure_ack(ip + 40, out);
  }
  return false;
}

bool AckCoalescer::hold(const uint8_t* frame, size_t len) {
  PureAck id;
  if (len > kMaxFrame || !parse_pure_ack(frame, len, &id)) return false;
  for (size_t i = n_; i-- > 0;) {
    Held& h = held_[i];
    if (h.id.key_len != id.key_len || std::memcmp(h.id.key, id.key, id.key_len) != 0) continue;
    const auto ahead = static_cast<int32_t>(id.ack - h.id.ack);
    if (ahead > 0 || (ahead == 0 && id.window != h.id.window)) {
      h.id = id;
      std::memcpy(h.bytes, frame, len);
      h.len = len;
      ++replaced_;
      return true;
    }
    break;  // a duplicate (or an older one): kept, after the held one
  }
  if (n_ == kMaxHeld) return false;
  Held& h = held_[n_++];
  h.id = id;
  std::memcpy(h.bytes, frame, len);
  h.len = len;
  return true;
}

}  // namespace vu::vdens
