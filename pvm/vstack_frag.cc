// pvm/vstack_frag.cc — IPv4/IPv6 fragment reassembly ahead of lwIP (pvm/vstack_frag.h).
#include "pvm/vstack_frag.h"

#include <algorithm>
#include <cstring>

namespace vu::pvm {

namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

uint16_t ip4_checksum(const uint8_t* h, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += be16(h + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

void Reassembler::drop(std::map<std::string, Datagram>::iterator it) {
  bytes_ -= it->second.charge;
  q_.erase(it);
  ++dropped;
}

void Reassembler::recharge(Datagram& d) {
  bytes_ -= d.charge;
  d.charge = d.head.size() + d.data.size() + d.have.size() * sizeof d.have[0] + 64;
  bytes_ += d.charge;
}

void Reassembler::expire(uint64_t now) {
  for (auto it = q_.begin(); it != q_.end();) {
    auto next = std::next(it);
    if (now - it->second.born >= kTimeoutMs) drop(it);
    it = next;
  }
}

Reassembler::Result Reassembler::input(const uint8_t* pkt, size_t len, uint64_t now, std::vector<uint8_t>* out) {
  if (len < 1) return kNotFragment;
  const int version = pkt[0] >> 4;
  if (version == 4) {
    if (len < 20) return kNotFragment;
    const size_t ihl = (pkt[0] & 0x0f) * 4u, total = be16(pkt + 2);
    const uint16_t frag = be16(pkt + 6);
    const bool more = (frag & 0x2000) != 0;
    const uint32_t off = (frag & 0x1fffu) * 8u;
    if (!more && off == 0) return kNotFragment;
    if (ihl < 20 || total < ihl || total > len) return kNotFragment;  // (lwIP drops it)
    std::string key(reinterpret_cast<const char*>(pkt + 12), 8);     // source, destination
    key.push_back('4');
    key.append(reinterpret_cast<const char*>(pkt + 4), 2);           // identification
    key.push_back(static_cast<char>(pkt[9]));                       // protocol
    return add(key, false, pkt, ihl, 0, 0, off, more, pkt + ihl, total - ihl, now, out);
  }
  if (version != 6 || len < 40) return kNotFragment;
  const size_t total = 40u + be16(pkt + 4);
  if (total > len) return kNotFragment;
  size_t nh_pos = 6, pos = 40;
  uint8_t nh = pkt[6];
  while (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
    if (pos + 8 > total) return kNotFragment;
    nh_pos = pos;
    nh = pkt[pos];
    pos += (pkt[pos + 1] + 1u) * 8u;
  }
  if (nh != 44 || pos + 8 > total) return kNotFragment;
  const uint16_t fo = be16(pkt + pos + 2);
  const uint32_t off = fo & 0xfff8u;
  const bool more = (fo & 1) != 0;
  const uint8_t next = pkt[pos];
  if (!more && off == 0) {  // an atomic fragment: the packet without its fragment header
    out->assign(pkt, pkt + pos);
    out->insert(out->end(), pkt + pos + 8, pkt + total);
    (*out)[nh_pos] = next;
    const size_t pl = out->size() - 40;
    (*out)[4] = static_cast<uint8_t>(pl >> 8), (*out)[5] = static_cast<uint8_t>(pl);
    return kWhole;
  }
  std::string key(reinterpret_cast<const char*>(pkt + 8), 32);  // source, destination
  key.push_back('6');
  key.append(reinterpret_cast<const char*>(pkt + pos + 4), 4);  // identification
  return add(key, true, pkt, pos, nh_pos, next, off, more, pkt + pos + 8, total - pos - 8, now, out);
}

Reassembler::Result Reassembler::add(const std::string& key, bool v6, const uint8_t* hdr, size_t hdr_len,
                                     size_t nh_pos, uint8_t next, uint32_t off, bool more, const uint8_t* data,
                                     size_t n, uint64_t now, std::vector<uint8_t>* out) {
  expire(now);
  auto it = q_.find(key);
  const uint32_t end = off + static_cast<uint32_t>(n);
  // Every fragment but the last carries a multiple of 8 bytes; the packet fits 65535 bytes.
  if ((more && (n == 0 || n % 8)) || end + (off == 0 ? hdr_len : 20) > kMaxPacket) {
    if (it != q_.end()) drop(it);
    else ++dropped;
    return kTaken;
  }
  if (it == q_.end()) {
    while (q_.size() >= kMaxDatagrams || (!q_.empty() && bytes_ + end > kMaxBytes)) {  // the oldest first
      auto oldest = std::min_element(q_.begin(), q_.end(), [](const auto& a, const auto& b) { return a.second.born < b.second.born; });
      drop(oldest);
    }
    it = q_.emplace(key, Datagram{}).first;
    it->second.born = now;
    it->second.v6 = v6;
  }
  Datagram& d = it->second;
  // Where it goes among what came: an exact duplicate is ignored, any other overlap drops all.
  auto pos = std::lower_bound(d.have.begin(), d.have.end(), std::make_pair(off, end));
  if (pos != d.have.end() && pos->first == off && pos->second == end) return kTaken;
  if ((pos != d.have.end() && pos->first < end) || (pos != d.have.begin() && std::prev(pos)->second > off) ||
      (d.last && end > d.end) || (!more && d.last && end != d.end) || (!more && end < (d.have.empty() ? 0 : d.have.back().second))) {
    drop(it);
    return kTaken;
  }
  d.have.insert(pos, {off, end});
  if (d.data.size() < end) d.data.resize(end);
  std::memcpy(d.data.data() + off, data, n);
  if (off == 0) {
    d.head.assign(hdr, hdr + hdr_len);
    d.nh_pos = nh_pos;
    d.next = next;
  }
  if (!more) d.last = true, d.end = end;
  recharge(d);
  if (bytes_ > kMaxBytes) {  // over the bound with this one: it goes (the others were here first)
    drop(it);
    return kTaken;
  }
  // Whole: the last fragment came, the first too, and no hole.
  if (!d.last || d.head.empty()) return kTaken;
  uint32_t upto = 0;
  for (const auto& [b, e] : d.have) {
    if (b != upto) return kTaken;
    upto = e;
  }
  if (upto != d.end) return kTaken;
  if (d.head.size() + d.end > kMaxPacket) {
    drop(it);
    return kTaken;
  }
  out->assign(d.head.begin(), d.head.end());
  out->insert(out->end(), d.data.begin(), d.data.begin() + d.end);
  uint8_t* h = out->data();
  if (!d.v6) {
    const size_t total = out->size();
    h[2] = static_cast<uint8_t>(total >> 8), h[3] = static_cast<uint8_t>(total);
    h[6] = h[7] = 0;  // no more fragments, offset 0 (DF cleared: it was fragmented)
    h[10] = h[11] = 0;
    const uint16_t sum = ip4_checksum(h, d.head.size());
    h[10] = static_cast<uint8_t>(sum >> 8), h[11] = static_cast<uint8_t>(sum);
  } else {
    h[d.nh_pos] = d.next;
    const size_t pl = out->size() - 40;
    h[4] = static_cast<uint8_t>(pl >> 8), h[5] = static_cast<uint8_t>(pl);
  }
  bytes_ -= d.charge;
  q_.erase(it);
  ++completed;
  return kWhole;
}

}  // namespace vu::pvm
