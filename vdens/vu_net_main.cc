// vu-net — the network half of a view (started by vu; not meant to be run by hand).
//
//   vu-net [--stats] [--ip ADDR/LEN]… [-p FWD]… UPLINK…      with fd 3: a SOCK_SEQPACKET socket to vu
//
// Opens the uplinks here, in vu's (the host's) network namespace, then answers on fd 3 with
// "R" (ready) or "E<message>" and exits. Once ready it receives the view's taps (one message,
// SCM_RIGHTS, in uplink order), pumps frames until fd 3 reads EOF (vu is done or gone), prints
// the per-uplink statistics to stderr when --stats, and exits 0.
// It is a separate, dynamically linked program because libvdeplug loads its plugins with dlopen
// and libslirp brings glib, while vu itself is static for start-up time.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "vdens/net_spec.h"
#include "vdens/pump.h"

namespace {

constexpr int kControlFd = 3;

void say(const std::string& msg) { (void)!::send(kControlFd, msg.data(), msg.size(), MSG_NOSIGNAL); }

int fail(const vu::Error& e) {
  say("E" + e.to_string());
  return 1;
}

// Receives one message carrying fds. Returns false on EOF (the view never started).
bool receive_taps(std::vector<int>* fds) {
  char byte;
  struct iovec iov = {&byte, 1};
  char cbuf[CMSG_SPACE(sizeof(int) * 16)];
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  while ((n = ::recvmsg(kControlFd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n <= 0) return false;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);
  vu::vdens::NetSpec spec;
  bool stats = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    vu::Result<void> r = vu::Ok{};
    if (a == "--stats") stats = true;
    else if (a == "--ip" && i + 1 < argc) r = vu::vdens::add_ip(spec, argv[++i]);
    else if (a == "-p" && i + 1 < argc) r = vu::vdens::add_forward(spec, argv[++i]);
    else r = vu::vdens::add_net(spec, a);
    if (!r) return fail(r.error());
  }
  if (auto r = vu::vdens::finish(spec); !r) return fail(r.error());
  auto pump = vu::vdens::Pump::open(spec);
  if (!pump) return fail(pump.error());
  say("R");
  std::vector<int> taps;
  if (!receive_taps(&taps)) return 0;
  if (auto r = (*pump)->attach(taps); !r) return fail(r.error());
  auto r = (*pump)->run(kControlFd);
  if (stats) {
    std::string text = (*pump)->stats_text();
    for (size_t b = 0, e; b < text.size(); b = e + 1) {
      e = text.find('\n', b);
      std::fprintf(stderr, "vu: net: %s\n", text.substr(b, e - b).c_str());
    }
  }
  if (!r) {
    std::fprintf(stderr, "vu: net: %s\n", r.error().to_string().c_str());
    return 1;
  }
  return 0;
}
