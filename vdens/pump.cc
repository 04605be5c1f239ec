#include "vdens/pump.h"

#include <arpa/inet.h>
#include <dlfcn.h>
extern "C" {  // libvdeplug.h has no C++ guard
#include <libvdeplug.h>
}
#include <poll.h>
#include <slirp/libslirp.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vdens/ack_coalesce.h"

namespace vu::vdens {

namespace {

constexpr size_t kEthHeader = 14;
constexpr size_t kBufSize = 65536 + 64;
// Lingering after vu hangs up: until nothing has moved for 300 ms, 1.5 s at most (vu waits
// for vu-net with --net-stats, and kills it after 2 s). 300 ms: longer than TCP's smallest
// retransmission and persist timeouts (200 ms). slirp sends no window update when its buffer
// drains, so a view that filled slirp's window waits for its persist timer: 50 ms of quiet
// lost up to 2.7 MiB of 16 in cli_test.sh's check.
constexpr int kLingerPollMs = 50;
constexpr int64_t kLingerQuietNs = 300'000'000;
constexpr int64_t kLingerMaxNs = 1'500'000'000;

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

  int tap = -1;
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
    if (::write(tap, frame, len) != static_cast<ssize_t>(len)) {
      stats.write_errors++;
      return;
    }
    stats.to_view_frames++;
    stats.to_view_bytes += len;
  }
};

namespace {

struct VdeCloser {
  void operator()(VDECONN* c) const { vde_close(c); }
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
    api_->input(slirp_, frame, static_cast<int>(len));
  }
  const char* kind() const override { return "slirp"; }

 private:
  static int add_poll(int fd, int events, void* opaque) {
    auto* self = static_cast<SlirpUplink*>(opaque);
    short ev = 0;
    if (events & SLIRP_POLL_IN) ev |= POLLIN;
    if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
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

  bool allow_host_loopback_ = false;
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
    if (r < 0)
      return Error::make(ErrorKind::kSetup,
                         "-p " + f.text + ": cannot listen on port " +
                             std::to_string(f.host_port) + (f.udp ? "/udp" : "/tcp"))
          .hint("the host port is probably in use (ss -ltnup shows by what); choose another");
  }
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<Pump>> Pump::open(const NetSpec& spec) {
  std::unique_ptr<Pump> p(new Pump);
  for (size_t i = 0; i < spec.uplinks.size(); ++i) {
    const vdens::Uplink& u = spec.uplinks[i];
    std::unique_ptr<Port> up;
    if (u.slirp) {
      up = std::make_unique<SlirpUplink>(u, spec, i == 0);
    } else {
      VDECONN* c = vde_open(const_cast<char*>(u.vnl.c_str()), const_cast<char*>("vu"), nullptr);
      if (!c) {
        int err = errno;
        Error e = Error::sys("open VDE network", err, u.vnl);
        if (err == EPROTONOSUPPORT)
          return std::move(e).hint("no libvdeplug plugin for this scheme (install it, or check the "
                                   "spelling: vde://, switch://, hub://, ptp://, vxvde://, udp://, cmd://)");
        if (err == ENOENT || err == ECONNREFUSED)
          return std::move(e).hint("is the switch running? (vde_switch -s PATH, or use switch://PATH)");
        return e;
      }
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
  for (size_t i = 0; i < taps.size(); ++i) ports_[i]->tap = taps[i];
  return Ok{};
}

Result<void> Pump::run(int control_fd) {
  std::vector<struct pollfd> fds;
  std::vector<size_t> first(ports_.size());
  static uint8_t buf[kBufSize];
  // After vu hangs up (the view's command is done), the view's kernel may still hold data its
  // sockets were closed with: `cat file > /dev/tcp/…` returns before the bytes are sent. Like a
  // host's kernel after a process exits, keep moving them until the view is quiet.
  bool lingering = false;
  int64_t quiet_since = 0, linger_end = 0;
  for (;;) {
    fds.clear();
    fds.push_back({lingering ? -1 : control_fd, POLLIN, 0});
    for (auto& u : ports_) fds.push_back({u->tap, POLLIN, 0});
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
        linger_end = quiet_since + kLingerMaxNs;
      }
    }
    for (size_t i = 0; i < ports_.size(); ++i) {
      Port& u = *ports_[i];
      if (fds[1 + i].revents & POLLIN) {
        // Drain the tap: a batch of frames per wake-up.
        for (int k = 0; k < 64; ++k) {
          ssize_t n = ::read(u.tap, buf, sizeof buf);
          if (n < 0) break;
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
      // Quiet: no tap and no slirp socket had anything (a host receiver that drains slowly
      // shows as POLLOUT on slirp's socket while the view waits for its window).
      const int64_t now = now_ns();
      if (ready > 0) quiet_since = now;
      if (now - quiet_since > kLingerQuietNs || now > linger_end) return Ok{};
    }
  }
}

std::string Pump::stats_text() const {
  std::string out;
  for (const auto& u : ports_) {
    const PortStats& s = u->stats;
    out += u->name + " (" + u->kind() + "): to view " + std::to_string(s.to_view_frames) +
           " frames " + std::to_string(s.to_view_bytes) + " B, from view " +
           std::to_string(s.from_view_frames) + " frames " + std::to_string(s.from_view_bytes) +
           " B, dropped " + std::to_string(s.runts) + " runt " + std::to_string(s.oversize) +
           " oversize " + std::to_string(s.write_errors) + " write errors" +
           (s.acks_coalesced ? "; " + std::to_string(s.acks_coalesced) + " ACKs coalesced" : "") + "\n";
  }
  return out;
}

}  // namespace vu::vdens
