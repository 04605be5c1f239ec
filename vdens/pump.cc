#include "vdens/pump.h"

#include <arpa/inet.h>
#include <dlfcn.h>
extern "C" {  // libvdeplug.h has no C++ guard
#include <libvdeplug.h>
}
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "base/unique_fd.h"
#include "vdens/ack_coalesce.h"
#include "vdens/plug_children.h"
#include "vdens/sock_diag.h"
#include "vdens/uplink_open.h"

namespace vu::vdens {

namespace {

constexpr size_t kEthHeader = 14;
constexpr size_t kBufSize = 65536 + 64;
// Lingering after vu hangs up: while the view's TCP sockets have data or a FIN to deliver
// (sock_diag), frames wait in a tap, or slirp has bytes for a host socket; 1.5 s at most (vu
// waits for vu-net with --net-stats, and kills it after 2 s). Between checks, 5 ms. Without a
// sock_diag socket (vu net attach into a namespace vu-net cannot enter), until nothing has moved
// for 300 ms: longer than TCP's 200 ms persist timer (slirp sends no window update when its
// buffer drains, so a view that filled its window waits for that timer).
constexpr int kLingerPollMs = 5;
constexpr int64_t kLingerQuietNs = 300'000'000;
constexpr int64_t kLingerMaxNs = 1'500'000'000;
// A sock_diag dump walks the kernel's whole TCP hash (~2 ms here): at most one per 20 ms, and
// only when the namespace has TCP sockets at all (sock_diag.h).
constexpr int64_t kLingerDumpNs = 20'000'000;
// Frame links (a pvm view's vu-vstack, pvm/vstack.h): the stack lingers itself (3 s at most
// after vu) and closes its ends when done; the pump pumps until every frame link has closed.
constexpr int64_t kLingerFramesMaxNs = 4'000'000'000;

std::string to_string6(const in6_addr& a) {
  char buf[INET6_ADDRSTRLEN];
  return ::inet_ntop(AF_INET6, &a, buf, sizeof buf) ? buf : "?";
}

int64_t now_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// libslirp, loaded on first use: it brings glib (and glib pcre2 and libm), ~1.5 ms of dynamic
// loading that a view on VDE alone should not pay for. The header gives the types.
struct SlirpApi {
  decltype(&::slirp_new) new_;
  decltype(&::slirp_cleanup) cleanup;
  decltype(&::slirp_input) input;
  decltype(&::slirp_pollfds_fill) pollfds_fill;
  decltype(&::slirp_pollfds_poll) pollfds_poll;
  decltype(&::slirp_add_hostfwd) add_hostfwd;
  decltype(&::slirp_add_hostxfwd) add_hostxfwd;
};

template <typename F>
bool bind_symbol(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  return *out != nullptr;
}

Result<const SlirpApi*> slirp_api() {
  static SlirpApi api;
  static bool loaded = false;
  if (loaded) return &api;
  void* lib = ::dlopen("libslirp.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return Error::make(ErrorKind::kSetup, std::string("slirp: ") + ::dlerror())
        .hint("slirp networking needs libslirp (Debian: apt install libslirp0)");
  if (!bind_symbol(lib, "slirp_new", &api.new_) || !bind_symbol(lib, "slirp_cleanup", &api.cleanup) ||
      !bind_symbol(lib, "slirp_input", &api.input) ||
      !bind_symbol(lib, "slirp_pollfds_fill", &api.pollfds_fill) ||
      !bind_symbol(lib, "slirp_pollfds_poll", &api.pollfds_poll) ||
      !bind_symbol(lib, "slirp_add_hostfwd", &api.add_hostfwd) ||
      !bind_symbol(lib, "slirp_add_hostxfwd", &api.add_hostxfwd))
    return Error::make(ErrorKind::kSetup, std::string("slirp: ") + ::dlerror())
        .hint("the installed libslirp is older than 4.5; vu needs its slirp_add_hostxfwd");
  loaded = true;
  return &api;
}

}  // namespace

// One uplink, paired with one tap.
class Port {
 public:
  virtual ~Port() = default;
  // Adds the fds to poll; returns nothing. Called before each poll.
  virtual void fill(std::vector<struct pollfd>& fds, int* timeout_ms) = 0;
  // Handles what poll found (fds from `first` on are this uplink's).
  virtual void dispatch(std::vector<struct pollfd>& fds, size_t first) = 0;
  // A frame read from the tap, to send out.
  virtual void send(const uint8_t* frame, size_t len) = 0;
  virtual const char* kind() const = 0;
  // Writes what the port holds back for the view (slirp: coalesced ACKs). At the end of every
  // batch, before the pump sleeps.
  virtual void flush() {}
  // What opening may leave for later (slirp: loading libslirp, the instance, its forwards).
  virtual Result<void> start() { return Ok{}; }
  // Whether the uplink holds bytes for the outside (slirp: data for a host socket).
  virtual bool has_pending() const { return false; }

  int tap = -1;
  bool frames = false;  // `tap` is a frame link: a datagram socket to a user-mode stack
  bool closed = false;  // a frame link whose other end has closed
  size_t max_frame = 0;
  PortStats stats;
  std::string name;

  // Writes a frame from the uplink into the view, dropping (and counting) bad ones.
  void to_view(const uint8_t* frame, size_t len) {
    if (len < kEthHeader) {
      stats.runts++;
      return;
    }
    if (len > max_frame) {
      stats.oversize++;
      return;
    }
    ssize_t w;
    // A frame link is non-blocking (its reads drain it): a full one is waited for (10 ms at
    // a time, 1 s at most), as a tap's queue would take the frame — the stack reads it soon.
    for (int tries = 0; (w = ::write(tap, frame, len)) < 0 && frames && (errno == EAGAIN || errno == EINTR) && tries < 100; ++tries) {
      struct pollfd p = {tap, POLLOUT, 0};
      (void)::poll(&p, 1, 10);
    }
    if (w != static_cast<ssize_t>(len)) {
      stats.write_errors++;
      return;
    }
    stats.to_view_frames++;
    stats.to_view_bytes += len;
  }
};

namespace {

struct VdeCloser {
  void operator()(VDECONN* c) const {
    end_plug_children();  // cmd:// and the like: vde_close waits for them (vdens/plug_children.h)
    vde_close(c);
  }
};

class VdeUplink : public Port {
 public:
  explicit VdeUplink(VDECONN* c) : conn_(c) {}
  void fill(std::vector<struct pollfd>& fds, int*) override {
    fds.push_back({vde_datafd(conn_.get()), POLLIN, 0});
  }
  void dispatch(std::vector<struct pollfd>& fds, size_t first) override {
    if (!(fds[first].revents & POLLIN)) return;
    ssize_t n = vde_recv(conn_.get(), buf_, sizeof buf_, 0);
    if (n <= 1) return;  // vxvde answers 1 for "nothing"
    to_view(buf_, static_cast<size_t>(n));
  }
  void send(const uint8_t* frame, size_t len) override {
    if (vde_send(conn_.get(), frame, len, 0) < 0) stats.write_errors++;
  }
  const char* kind() const override { return "vde"; }

 private:
  std::unique_ptr<VDECONN, VdeCloser> conn_;
  uint8_t buf_[VDE_ETHBUFSIZE];
};

class SlirpUplink : public Port {
 public:
  struct Timer {
    SlirpTimerCb cb;
    void* opaque;
    int64_t expire_ms;  // -1: not armed
  };

  // The port forwards (and the view's address they lead to) go to the first uplink only.
  SlirpUplink(const vdens::Uplink& u, const NetSpec& spec, bool first)
      : allow_host_loopback_(u.allow_host_loopback) {
    max_frame = kSlirpMtu + kEthHeader;
    if (!first) return;
    forwards_ = spec.forwards;
    if (!spec.ip.empty() && spec.ip[0].addr.s_addr) guest_ = spec.ip[0].addr;
    else ::inet_pton(AF_INET, kSlirpAddress, &guest_);
  }
  Result<void> start() override;

  ~SlirpUplink() override {
    if (slirp_) api_->cleanup(slirp_);
    for (Timer* t : timers_) delete t;
  }

  void fill(std::vector<struct pollfd>& fds, int* timeout_ms) override {
    first_ = fds.size();
    fds_ = &fds;
    wants_out_ = false;
    uint32_t t = static_cast<uint32_t>(*timeout_ms < 0 ? 1000 : *timeout_ms);
    api_->pollfds_fill(slirp_, &t, &SlirpUplink::add_poll, this);
    int64_t now = now_ns() / 1000000;
    for (Timer* tm : timers_)
      if (tm->expire_ms >= 0) t = std::min<uint32_t>(t, static_cast<uint32_t>(std::max<int64_t>(0, tm->expire_ms - now)));
    *timeout_ms = static_cast<int>(t);
  }
  void dispatch(std::vector<struct pollfd>& fds, size_t first) override {
    fds_ = &fds;  // read by get_revents during slirp_pollfds_poll
    first_ = first;
    api_->pollfds_poll(slirp_, 0, &SlirpUplink::get_revents, this);
    int64_t now = now_ns() / 1000000;
    for (Timer* tm : timers_) {
      if (tm->expire_ms >= 0 && tm->expire_ms <= now) {
        tm->expire_ms = -1;
        tm->cb(tm->opaque);
      }
    }
  }
  void send(const uint8_t* frame, size_t len) override {
    if (!udp_peers_.empty() && len <= kBufSize) {
      std::memcpy(out_.get(), frame, len);
      if (udp_reply_to_host(out_.get(), len)) frame = out_.get();
    }
    api_->input(slirp_, frame, static_cast<int>(len));
  }
  const char* kind() const override { return "slirp"; }
  bool has_pending() const override { return wants_out_; }

 private:
  static int add_poll(int fd, int events, void* opaque) {
    auto* self = static_cast<SlirpUplink*>(opaque);
    short ev = 0;
    if (events & SLIRP_POLL_IN) ev |= POLLIN;
    if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
    // slirp polls for POLLOUT only on a socket it has bytes for (or that is connecting).
    if (ev & POLLOUT) self->wants_out_ = true;
    self->fds_->push_back({fd, ev, 0});
    return static_cast<int>(self->fds_->size() - 1 - self->first_);
  }
  static int get_revents(int idx, void* opaque) {
    auto* self = static_cast<SlirpUplink*>(opaque);
    short r = (*self->fds_)[self->first_ + static_cast<size_t>(idx)].revents;
    int out = 0;
    if (r & POLLIN) out |= SLIRP_POLL_IN;
    if (r & POLLOUT) out |= SLIRP_POLL_OUT;
    if (r & POLLPRI) out |= SLIRP_POLL_PRI;
    if (r & POLLERR) out |= SLIRP_POLL_ERR;
    if (r & POLLHUP) out |= SLIRP_POLL_HUP;
    return out;
  }
  static ssize_t send_packet(const void* buf, size_t len, void* opaque) {
    auto* self = static_cast<SlirpUplink*>(opaque);
    const auto* frame = static_cast<const uint8_t*>(buf);
    if (!self->udp_view_ports_.empty() && len <= kBufSize) {
      std::memcpy(self->in_.get(), frame, len);
      if (self->udp_from_host(self->in_.get(), len)) frame = self->in_.get();
    }
    if (!self->acks_.hold(frame, len)) {
      self->flush();  // the held ACKs first: the order of a connection's frames is kept
      self->to_view(frame, len);
    }
    return static_cast<ssize_t>(len);
  }
  void flush() override {
    acks_.flush([this](const uint8_t* f, size_t n) { to_view(f, n); });
    stats.acks_coalesced = acks_.replaced();
  }
  static void guest_error(const char*, void* opaque) { static_cast<SlirpUplink*>(opaque)->stats.runts++; }
  static int64_t clock_ns(void*) { return now_ns(); }
  static void* timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
    auto* t = new Timer{cb, cb_opaque, -1};
    static_cast<SlirpUplink*>(opaque)->timers_.push_back(t);
    return t;
  }
  static void timer_free(void* timer, void* opaque) {
    auto& v = static_cast<SlirpUplink*>(opaque)->timers_;
    v.erase(std::remove(v.begin(), v.end(), static_cast<Timer*>(timer)), v.end());
    delete static_cast<Timer*>(timer);
  }
  static void timer_mod(void* timer, int64_t expire_ms, void*) {
    static_cast<Timer*>(timer)->expire_ms = expire_ms;
  }
  static void reg_fd(int, void*) {}
  static void notify(void*) {}

  // UDP forwards without allow-host-loopback. slirp shows a client on the host's loopback as
  // coming from its gateway (10.0.2.2, fd00::2), but then refuses to send anything the view
  // addresses to the gateway (EPERM in sotranslate_out): every reply was lost. So the pump
  // notes which gateway ports sent datagrams to a forwarded view port, and the view's replies
  // from that port to those ports are readdressed to the host's loopback (127.0.0.1, ::1),
  // which slirp sends as is. Nothing else reaches the host's loopback.
  struct UdpHeaderAt {
    size_t ip = 0, udp = 0;
    bool v6 = false;
  };
  static bool udp_at(const uint8_t* f, size_t len, UdpHeaderAt* at) {
    if (len < kEthHeader + 20 + 8) return false;
    const uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
    at->ip = kEthHeader;
    if (type == 0x0800) {
      const size_t ihl = static_cast<size_t>(f[kEthHeader] & 0x0f) * 4;
      if (f[kEthHeader + 9] != IPPROTO_UDP || ihl < 20 || len < kEthHeader + ihl + 8) return false;
      if ((f[kEthHeader + 6] & 0x3f) || f[kEthHeader + 7]) return false;  // fragments
      at->udp = kEthHeader + ihl;
      at->v6 = false;
      return true;
    }
    if (type == 0x86dd) {
      if (len < kEthHeader + 40 + 8 || f[kEthHeader + 6] != IPPROTO_UDP) return false;
      at->udp = kEthHeader + 40;
      at->v6 = true;
      return true;
    }
    return false;
  }
  static uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
  bool is_gateway(const uint8_t* addr, bool v6) const {
    return v6 ? std::memcmp(addr, &gateway6_, 16) == 0 : std::memcmp(addr, &gateway4_, 4) == 0;
  }
  static bool is_loopback(const uint8_t* addr, bool v6) {
    static const uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return v6 ? std::memcmp(addr, kLoop6, 16) == 0 : addr[0] == 127;
  }
  // A datagram from slirp to the view. Its source is the gateway, or (once slirp has sent a
  // readdressed reply: it then remembers the host's loopback as the peer) the host's loopback,
  // which the view's kernel would drop as a martian: shown as the gateway. Notes the ports.
  bool udp_from_host(uint8_t* f, size_t len) {
    UdpHeaderAt at;
    if (!udp_at(f, len, &at)) return false;
    uint8_t* src = f + at.ip + (at.v6 ? 8 : 12);
    const bool loop = is_loopback(src, at.v6);
    if (!loop && !is_gateway(src, at.v6)) return false;
    const uint16_t sport = be16(f + at.udp), dport = be16(f + at.udp + 2);
    if (std::find(udp_view_ports_.begin(), udp_view_ports_.end(), dport) == udp_view_ports_.end()) return false;
    const uint32_t key = static_cast<uint32_t>(dport) << 16 | sport;
    if (std::find(udp_peers_.begin(), udp_peers_.end(), key) == udp_peers_.end()) {
      if (udp_peers_.size() >= 256) udp_peers_.erase(udp_peers_.begin());  // the oldest goes
      udp_peers_.push_back(key);
    }
    if (!loop) return false;
    readdress(f, at, src, at.v6 ? reinterpret_cast<const uint8_t*>(&gateway6_)
                                 : reinterpret_cast<const uint8_t*>(&gateway4_));
    return true;
  }
  // Rewrites the address at `addr` (in f's IP header) to `to`, checksums included.
  static void readdress(uint8_t* f, const UdpHeaderAt& at, uint8_t* addr, const uint8_t* to) {
    const size_t n = at.v6 ? 16 : 4;
    uint8_t* udp_sum = f + at.udp + 6;
    if (at.v6 || be16(udp_sum) != 0) {  // IPv4 UDP may carry no checksum (0)
      checksum_adjust(udp_sum, addr, to, n);
      if (be16(udp_sum) == 0) udp_sum[0] = udp_sum[1] = 0xff;
    }
    if (!at.v6) checksum_adjust(f + at.ip + 10, addr, to, n);
    std::memcpy(addr, to, n);
  }
  // Adds (new - old) to a ones' complement checksum field (RFC 1624), 16-bit words.
  static void checksum_adjust(uint8_t* sum, const uint8_t* old, const uint8_t* neu, size_t n) {
    uint32_t acc = static_cast<uint16_t>(~be16(sum));
    for (size_t i = 0; i < n; i += 2) {
      acc += static_cast<uint16_t>(~be16(old + i));
      acc += be16(neu + i);
    }
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    const uint16_t r = static_cast<uint16_t>(~acc);
    sum[0] = static_cast<uint8_t>(r >> 8);
    sum[1] = static_cast<uint8_t>(r);
  }
  bool udp_reply_to_host(uint8_t* f, size_t len) {
    UdpHeaderAt at;
    if (!udp_at(f, len, &at)) return false;
    uint8_t* dst = f + at.ip + (at.v6 ? 24 : 16);
    if (!is_gateway(dst, at.v6)) return false;
    const uint32_t key = static_cast<uint32_t>(be16(f + at.udp)) << 16 | be16(f + at.udp + 2);
    if (std::find(udp_peers_.begin(), udp_peers_.end(), key) == udp_peers_.end()) return false;
    uint8_t loopback[16] = {};
    if (at.v6) loopback[15] = 1;
    else loopback[0] = 127, loopback[3] = 1;
    readdress(f, at, dst, loopback);
    return true;
  }

  bool allow_host_loopback_ = false;
  bool wants_out_ = false;
  std::vector<uint16_t> udp_view_ports_;  // view ports of UDP forwards (not with allow-host-loopback)
  std::vector<uint32_t> udp_peers_;       // view port << 16 | gateway port, from recent datagrams
  in_addr gateway4_{};
  in6_addr gateway6_{};
  // Frames being readdressed (view's, slirp's): made only for UDP forwards.
  std::unique_ptr<uint8_t[]> out_, in_;
  std::vector<PortForward> forwards_;
  in_addr guest_{};
  AckCoalescer acks_;
  const SlirpApi* api_ = nullptr;
  Slirp* slirp_ = nullptr;
  std::vector<Timer*> timers_;
  std::vector<struct pollfd>* fds_ = nullptr;
  size_t first_ = 0;
  SlirpCb cb_{};
};

// Why a forward's host socket could not be made, in the errno's own words and with its hint.
Error forward_error(const PortForward& f, int err) {
  const std::string host = f.v6 ? "[" + to_string6(f.host_addr6) + "]" : to_string(f.host_addr);
  Error e = Error::sys("-p " + f.text + ": listen on " + host + " port",
                       err, std::to_string(f.host_port) + (f.udp ? "/udp" : "/tcp"));
  switch (err) {
    case EADDRINUSE:
      return std::move(e).hint("the host port is in use (ss -ltnup shows by what); choose another");
    case EACCES: {
      std::string start = "1024";
      if (auto v = sys::read_file("/proc/sys/net/ipv4/ip_unprivileged_port_start"); v && !v->empty())
        start = v->substr(0, v->find('\n'));
      return std::move(e).hint("ports below " + start + " need privilege (sysctl net.ipv4.ip_unprivileged_port_start); choose a port >= " + start);
    }
    case EADDRNOTAVAIL:
      return std::move(e).hint(host + " is not an address of this host (ip -br addr lists them); the default is 127.0.0.1");
    default:
      return e;
  }
}

Result<void> SlirpUplink::start() {
  if (slirp_) return Ok{};
  api_ = VU_TRY(slirp_api());
  SlirpConfig cfg{};
  cfg.version = 3;
  cfg.in_enabled = true;
  ::inet_pton(AF_INET, kSlirpNet, &cfg.vnetwork);
  ::inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
  ::inet_pton(AF_INET, kSlirpGateway, &cfg.vhost);
  ::inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
  ::inet_pton(AF_INET, kSlirpDns, &cfg.vnameserver);
  cfg.in6_enabled = true;
  ::inet_pton(AF_INET6, kSlirpPrefix6, &cfg.vprefix_addr6);
  cfg.vprefix_len = 64;
  ::inet_pton(AF_INET6, kSlirpGateway6, &cfg.vhost6);
  ::inet_pton(AF_INET6, kSlirpDns6, &cfg.vnameserver6);
  cfg.vhostname = "vu";
  cfg.if_mtu = kSlirpMtu;
  cfg.if_mru = kSlirpMtu;
  cfg.disable_host_loopback = !allow_host_loopback_;
  cb_.send_packet = &SlirpUplink::send_packet;
  cb_.guest_error = &SlirpUplink::guest_error;
  cb_.clock_get_ns = &SlirpUplink::clock_ns;
  cb_.timer_new = &SlirpUplink::timer_new;
  cb_.timer_free = &SlirpUplink::timer_free;
  cb_.timer_mod = &SlirpUplink::timer_mod;
  cb_.register_poll_fd = &SlirpUplink::reg_fd;
  cb_.unregister_poll_fd = &SlirpUplink::reg_fd;
  cb_.notify = &SlirpUplink::notify;
  gateway4_ = cfg.vhost;
  gateway6_ = cfg.vhost6;
  slirp_ = api_->new_(&cfg, &cb_, this);
  if (!slirp_) return Error::make(ErrorKind::kSetup, "slirp: slirp_new failed");
  for (const PortForward& f : forwards_) {
    int r;
    if (f.v6) {
      struct sockaddr_in6 h{}, g{};
      h.sin6_family = g.sin6_family = AF_INET6;
      h.sin6_addr = f.host_addr6;
      h.sin6_port = htons(static_cast<uint16_t>(f.host_port));
      ::inet_pton(AF_INET6, kSlirpAddress6, &g.sin6_addr);
      g.sin6_port = htons(static_cast<uint16_t>(f.view_port));
      r = api_->add_hostxfwd(slirp_, reinterpret_cast<struct sockaddr*>(&h), sizeof h,
                             reinterpret_cast<struct sockaddr*>(&g), sizeof g,
                             SLIRP_HOSTFWD_V6ONLY | (f.udp ? SLIRP_HOSTFWD_UDP : 0));
    } else {
      r = api_->add_hostfwd(slirp_, f.udp, f.host_addr, f.host_port, guest_, f.view_port);
    }
    if (r < 0) return forward_error(f, errno);
    if (f.udp && !allow_host_loopback_) {
      udp_view_ports_.push_back(static_cast<uint16_t>(f.view_port));
      if (!out_) out_.reset(new uint8_t[kBufSize]), in_.reset(new uint8_t[kBufSize]);
    }
  }
  // libslirp listens with a backlog of 1 (tcp_listen): with 20 clients connecting at once the
  // host's accept queue overflows, SYNs are dropped and retried after 1 s. listen() again on a
  // listening socket sets a new backlog (Linux); slirp's listening sockets are those it polls
  // that accept connections.
  std::vector<int> fds;
  uint32_t t = 0;
  api_->pollfds_fill(slirp_, &t, [](int fd, int, void* o) {
    static_cast<std::vector<int>*>(o)->push_back(fd);
    return 0;
  }, &fds);
  for (int fd : fds) {
    int acc = 0;
    socklen_t len = sizeof acc;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc && ::listen(fd, SOMAXCONN) < 0)
      return Error::sys("listen", errno, "(a -p forward's host socket)");
  }
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<Pump>> Pump::open(const NetSpec& spec, int answer_fd) {
  std::unique_ptr<Pump> p(new Pump);
  const int64_t opening = now_ns();
  for (size_t i = 0; i < spec.uplinks.size(); ++i) {
    const vdens::Uplink& u = spec.uplinks[i];
    std::unique_ptr<Port> up;
    if (u.slirp) {
      up = std::make_unique<SlirpUplink>(u, spec, i == 0);
    } else {
      // One budget for all the uplinks (each gets at least 100 ms).
      const int left = static_cast<int>(kOpenTimeoutMs - (now_ns() - opening) / 1'000'000);
      VDECONN* c = VU_TRY(open_vde(u.vnl, answer_fd, std::max(left, 100)));
      up = std::make_unique<VdeUplink>(c);
      up->max_frame = VDE_ETHBUFSIZE;
    }
    up->name = "vde" + std::to_string(i);
    p->ports_.push_back(std::move(up));
  }
  return p;
}

Result<void> Pump::start() {
  for (auto& port : ports_) VU_TRY_VOID(port->start());
  return Ok{};
}

Pump::~Pump() = default;

Result<void> Pump::attach(const std::vector<int>& taps) {
  if (taps.size() != ports_.size())
    return Error::make(ErrorKind::kSetup, "vu-net: got " + std::to_string(taps.size()) +
                                              " taps for " + std::to_string(ports_.size()) + " uplinks");
  for (size_t i = 0; i < taps.size(); ++i) {
    Port& p = *ports_[i];
    p.tap = taps[i];
    // A socket rather than a tap: a frame link of a pvm view's stack (pvm/vstack.h), one frame
    // per datagram as a tap gives them.
    struct stat st;
    p.frames = ::fstat(p.tap, &st) == 0 && S_ISSOCK(st.st_mode);
    if (p.frames) ::fcntl(p.tap, F_SETFL, ::fcntl(p.tap, F_GETFL) | O_NONBLOCK);
  }
  return Ok{};
}

Result<void> Pump::run(int control_fd) {
  std::vector<struct pollfd> fds;
  std::vector<size_t> first(ports_.size());
  static uint8_t buf[kBufSize];
  // After vu hangs up (the view's command is done), the view's kernel may still hold data its
  // sockets were closed with: `cat file > /dev/tcp/…` returns before the bytes are sent. Like a
  // host's kernel after a process exits, keep moving them while there are any (see kLinger*).
  bool lingering = false;
  std::optional<ViewNetns> view_ns;  // while lingering: the view's sockets, when reachable
  int64_t quiet_since = 0, linger_end = 0, next_dump = 0;
  bool frame_links = false;
  for (auto& u : ports_) frame_links |= u->frames;
  for (;;) {
    fds.clear();
    fds.push_back({lingering ? -1 : control_fd, POLLIN, 0});
    for (auto& u : ports_) fds.push_back({u->closed ? -1 : u->tap, POLLIN, 0});
    int timeout = -1;
    for (size_t i = 0; i < ports_.size(); ++i) {
      first[i] = fds.size();
      ports_[i]->fill(fds, &timeout);
    }
    if (lingering) timeout = timeout < 0 ? kLingerPollMs : std::min(timeout, kLingerPollMs);
    const int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Error::sys("poll", errno);
    }
    if (!lingering && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char c;
      if (::read(control_fd, &c, 1) <= 0) {  // vu is gone or done
        lingering = true;
        quiet_since = now_ns();
        linger_end = quiet_since + (frame_links ? kLingerFramesMaxNs : kLingerMaxNs);
        if (!ports_.empty() && !frame_links) {
          auto ns = open_view_netns(ports_[0]->tap);
          if (ns && tcp_sockets(*ns) >= 0) view_ns.emplace(std::move(ns).value());
        }
      }
    }
    bool moved = false;  // frames from the view this round
    for (size_t i = 0; i < ports_.size(); ++i) {
      Port& u = *ports_[i];
      if (fds[1 + i].revents & (POLLIN | POLLHUP)) {
        moved = true;
        // Drain the tap: a batch of frames per wake-up.
        for (int k = 0; k < 64; ++k) {
          ssize_t n = ::read(u.tap, buf, sizeof buf);
          if (n < 0) break;
          if (n == 0 && u.frames) {  // the stack has closed its end
            u.closed = true;
            break;
          }
          if (static_cast<size_t>(n) < kEthHeader) {
            u.stats.runts++;
            continue;
          }
          u.stats.from_view_frames++;
          u.stats.from_view_bytes += static_cast<uint64_t>(n);
          u.send(buf, static_cast<size_t>(n));
        }
      }
      u.dispatch(fds, first[i]);
    }
    for (auto& u : ports_) u->flush();
    if (lingering) {
      const int64_t now = now_ns();
      if (now > linger_end) return Ok{};
      if (frame_links) {  // until the stack has closed every frame link (it lingers itself)
        bool open = false;
        for (auto& u : ports_) open |= u->frames && !u->closed;
        if (!open) return Ok{};
        continue;
      }
      bool busy = moved;
      for (auto& u : ports_) busy |= u->has_pending();
      if (busy) {
        quiet_since = now;
        continue;
      }
      if (view_ns) {
        const int sockets = tcp_sockets(*view_ns);
        if (sockets == 0) return Ok{};  // the common case: a read of sockstat
        if (sockets > 0 && now < next_dump) continue;
        next_dump = now + kLingerDumpNs;
        auto in_flight = sockets > 0 ? tcp_in_flight(view_ns->diag.get()) : Result<bool>(Error::sys("sockstat", EIO));
        if (in_flight && !*in_flight) return Ok{};
        if (!in_flight) view_ns.reset();  // then the quiet rule
        continue;
      }
      if (now - quiet_since > kLingerQuietNs) return Ok{};
    }
  }
}

void Pump::close_uplinks() { ports_.clear(); }

std::string Pump::stats_text() const {
  std::string out;
  for (const auto& u : ports_) {
    out += stats_line(u->name, u->kind(), u->stats) + "\n";
  }
  return out;
}

}  // namespace vu::vdens
