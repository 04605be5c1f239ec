// vdens/ack_coalesce.h — holding back the pure TCP ACKs a slirp instance sends to the view, so
// that a later one of the same connection replaces them (GRO's idea, for ACKs).
//
// libslirp acknowledges every segment it receives at once, and offers no window scaling: a view
// sending through it gets one ACK per 32 KB segment, and each ACK it processes (in vu-net's
// write to the tap) sends one more segment. The pump reads the tap in batches; within a batch,
// the ACKs slirp makes for one connection say the same thing, newer ones more. AckCoalescer
// keeps the newest: a pure ACK (no data, no SYN/FIN/RST/URG, no TCP options, IPv4 or IPv6)
// replaces the held one of its connection when it acknowledges more, or the same with another
// window. Duplicate ACKs (same number, same window: fast retransmit's signal) are all kept.
// Anything else bound for the view is written after the held ACKs, in order; the pump flushes
// them at the end of every batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vu::vdens {

struct PureAck {
  uint8_t key[38];  // ethertype's family byte, addresses, ports: the connection, one direction
  size_t key_len = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
};

// Whether `frame` (Ethernet) is a pure TCP ACK, and its identity.
bool parse_pure_ack(const uint8_t* frame, size_t len, PureAck* out);

class AckCoalescer {
 public:
  static constexpr size_t kMaxHeld = 32;
  static constexpr size_t kMaxFrame = 14 + 40 + 20;

  // Holds `frame` if it is a pure ACK and there is room; false: the caller writes it itself
  // (after flush(), to keep the order). Counts what it replaced in replaced().
  bool hold(const uint8_t* frame, size_t len);
  // Hands the held frames, oldest first, to write(frame, len), and forgets them.
  template <typename Write>
  void flush(Write&& write) {
    for (size_t i = 0; i < n_; ++i) write(held_[i].bytes, held_[i].len);
    n_ = 0;
  }
  size_t held() const { return n_; }
  uint64_t replaced() const { return replaced_; }

 private:
  struct Held {
    PureAck id;
    uint8_t bytes[kMaxFrame];
    size_t len;
  };
  Held held_[kMaxHeld];
  size_t n_ = 0;
  uint64_t replaced_ = 0;
};

}  // namespace vu::vdens
