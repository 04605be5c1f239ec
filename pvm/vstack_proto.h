// pvm/vstack_proto.h — the messages between the monitor (pvm/vstack.cc) and vu-vstack
// (pvm/vstack_main.cc), the process that runs a VDE view's user-mode TCP/IP stack. The design
// is in pvm/vstack.h.
//
// One SOCK_SEQPACKET socketpair (the channel) per view: the monitor's workers each send a
// request (one message: VsReq, then `len` bytes of payload) with SCM_RIGHTS descriptors — first
// always the write end of a fresh SEQPACKET socketpair the reply (one VsRep) comes back on,
// then for kSocket/kAccept the stack's end of the view socket's data socketpair. A request that
// may wait (kConnect) is served on a thread of its own; the others at once, in order.
//
// A TCP socket's data pair carries one byte the monitor writes from the view's end before the
// view has it (vstack.cc data_pair): vu-vstack never takes it (SO_PEEK_OFF 1; each read leaves
// its last byte in its place) but for a listener's pair (taken at kListen). Closing the
// stack's end with that byte unread is how a reset reaches the view: af_unix's release gives
// the peer sk_err ECONNRESET when the closing end has unread data (pvm/vstack.h).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace vu::pvm::vs {

enum Op : uint32_t {
  kSocket = 1,   // a: domain, b: SOCK_STREAM/SOCK_DGRAM, c: protocol; fd: the stack's end of the data pair
  kBind,         // addr
  kListen,       // a: backlog
  kConnect,      // addr
  kAccept,       // id2: the new socket's id; fd: the stack's end of its data pair; reply: peer
  kName,         // a: 0 local, 1 peer; reply: addr
  kSendTo,       // addr, payload: the datagram
  kRecvAddr,     // id2: hash of the datagram the view just received, c: 1 for MSG_PEEK; reply: its sender,
                 // ret: its TTL (ICMP)
  kSetOpt,       // a: level, b: name, c: int value (SOL_SOCKET/SO_LINGER: c 1 for {1, 0})
  kGetOpt,       // a: level, b: name; reply: ret = the int value (SOL_SOCKET/SO_ERROR: the
                 // connection's end, ECONNRESET/ETIMEDOUT…, once)
  kAddr,         // a: 1 add / 0 delete, b: prefix, addr (port ignored): the interface's address
  kLink,         // a: 1 up / 0 down (vde0)
  kRoute,        // a: 1 add / 0 delete, b: prefix of the destination, addr: destination, addr2: gateway
  kMac,          // addr: the first 6 bytes, vde0's MAC (the one vu's rtnetlink model shows)
  kMtu,          // a: the interface's MTU
};
// kAddr, kLink, kRoute, kMac, kMtu: `id` is the interface (0: vde0, 1: vde1, …: stack mode's
// several networks, pvm/vstack.h).

struct VsReq {
  uint32_t op = 0;
  uint32_t len = 0;  // payload bytes after the header
  uint64_t id = 0;   // the view socket (its data pair's name, see vstack.cc)
  uint64_t id2 = 0;  // kAccept: the new socket's id; kRecvAddr: the datagram's hash
  int32_t a = 0, b = 0, c = 0;
  uint32_t addrlen = 0;
  sockaddr_storage addr{};
  sockaddr_storage addr2{};
};

struct VsRep {
  int64_t ret = -1;
  int32_t err = 0;  // errno when ret < 0
  uint32_t addrlen = 0;
  sockaddr_storage addr{};
};

inline constexpr uint32_t kMaxPayload = 65536;

// A datagram's key (FNV-1a over its bytes, seeded with its length): how the monitor names the
// datagram whose sender it asks for.
inline uint64_t hash(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull ^ n;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  return h;
}

// The two sides' address arithmetic (vu's rtnetlink model in inet.cc and vu-vstack):
// an address family's length in bytes (0: neither IPv4 nor IPv6), and whether two addresses
// share their first `bits` bits.
inline size_t addr_len(int family) { return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0; }
inline bool same_net(const unsigned char* x, const unsigned char* y, int bits) {
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    unsigned char m = static_cast<unsigned char>(bits >= 8 ? 0xff : 0xff << (8 - bits));
    if ((x[i] & m) != (y[i] & m)) return false;
  }
  return true;
}

}  // namespace vu::pvm::vs
