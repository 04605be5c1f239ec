// pvm/nlmsg.h — the few netlink message helpers the rtnetlink emulation (inet.cc) and its tests
// need, after libmnl's (same names with nlm_ for mnl_, same semantics). Not libmnl itself: vu is
// linked statically and Debian ships libmnl as a shared library only.
#pragma once

#include <linux/netlink.h>
#include <stdint.h>
#include <string.h>

namespace vu::pvm {

inline nlmsghdr* nlm_nlmsg_put_header(void* buf) {
  auto* h = static_cast<nlmsghdr*>(buf);
  memset(h, 0, NLMSG_HDRLEN);
  h->nlmsg_len = NLMSG_HDRLEN;
  return h;
}
inline void* nlm_nlmsg_put_extra_header(nlmsghdr* h, size_t size) {
  char* p = reinterpret_cast<char*>(h) + h->nlmsg_len;
  size_t len = NLMSG_ALIGN(size);
  h->nlmsg_len += static_cast<uint32_t>(len);
  memset(p, 0, len);
  return p;
}
inline void* nlm_nlmsg_get_payload(const nlmsghdr* h) { return const_cast<char*>(reinterpret_cast<const char*>(h) + NLMSG_HDRLEN); }
inline void* nlm_nlmsg_get_payload_offset(const nlmsghdr* h, size_t off) {
  return static_cast<char*>(nlm_nlmsg_get_payload(h)) + NLMSG_ALIGN(off);
}
inline void* nlm_nlmsg_get_payload_tail(const nlmsghdr* h) {
  return const_cast<char*>(reinterpret_cast<const char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
}
inline bool nlm_nlmsg_ok(const nlmsghdr* h, int len) {
  return len >= static_cast<int>(sizeof(nlmsghdr)) && h->nlmsg_len >= sizeof(nlmsghdr) &&
         h->nlmsg_len <= static_cast<unsigned>(len);
}
inline const nlmsghdr* nlm_nlmsg_next(const nlmsghdr* h, int* len) {
  *len -= static_cast<int>(NLMSG_ALIGN(h->nlmsg_len));
  return reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
}

inline void nlm_attr_put(nlmsghdr* h, uint16_t type, size_t len, const void* data) {
  auto* a = static_cast<nlattr*>(nlm_nlmsg_get_payload_tail(h));
  size_t payload = NLA_HDRLEN + len;
  a->nla_type = type;
  a->nla_len = static_cast<uint16_t>(payload);
  memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, data, len);
  size_t pad = NLA_ALIGN(len) - len;
  if (pad) memset(reinterpret_cast<char*>(a) + payload, 0, pad);
  h->nlmsg_len += static_cast<uint32_t>(NLA_ALIGN(payload));
}
inline void nlm_attr_put_u8(nlmsghdr* h, uint16_t type, uint8_t v) { nlm_attr_put(h, type, 1, &v); }
inline void nlm_attr_put_u32(nlmsghdr* h, uint16_t type, uint32_t v) { nlm_attr_put(h, type, 4, &v); }
inline void nlm_attr_put_strz(nlmsghdr* h, uint16_t type, const char* s) { nlm_attr_put(h, type, strlen(s) + 1, s); }
inline uint16_t nlm_attr_get_type(const nlattr* a) { return a->nla_type & NLA_TYPE_MASK; }
inline void* nlm_attr_get_payload(const nlattr* a) { return const_cast<char*>(reinterpret_cast<const char*>(a) + NLA_HDRLEN); }
inline const char* nlm_attr_get_str(const nlattr* a) { return static_cast<const char*>(nlm_attr_get_payload(a)); }
inline size_t nlm_attr_get_payload_len(const nlattr* a) { return a->nla_len - NLA_HDRLEN; }  // after nlm_attr_ok
inline bool nlm_attr_ok(const nlattr* a, int len) {
  return len >= static_cast<int>(sizeof(nlattr)) && a->nla_len >= sizeof(nlattr) && static_cast<int>(a->nla_len) <= len;
}
inline const nlattr* nlm_attr_next(const nlattr* a) {
  return reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(a) + NLA_ALIGN(a->nla_len));
}

}  // namespace vu::pvm
