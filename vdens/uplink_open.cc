#include "vdens/uplink_open.h"

extern "C" {  // libvdeplug.h has no C++ guard
#include <libvdeplug.h>
}
#include <dirent.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/strings.h"
#include "base/unique_fd.h"

namespace vu::vdens {

namespace {

volatile sig_atomic_t g_alarms = 0;
int g_answer_fd = -1;
char g_hard_message[1024];
size_t g_hard_len = 0;

void on_alarm(int) {
  g_alarms = g_alarms + 1;
  if (g_alarms < 2) return;  // the first interrupts the blocked call
  // The plugin retried: answer for it and go (async-signal-safe: send, _exit).
  if (g_answer_fd >= 0) (void)!::send(g_answer_fd, g_hard_message, g_hard_len, MSG_NOSIGNAL);
  ::_exit(1);
}

// Arms SIGALRM for the time of one vde_open.
class OpenAlarm {
 public:
  explicit OpenAlarm(int timeout_ms) {
    struct sigaction sa {};
    sa.sa_handler = on_alarm;  // no SA_RESTART: the blocked call returns EINTR
    ::sigaction(SIGALRM, &sa, &old_);
    g_alarms = 0;
    struct itimerval t {};
    t.it_value.tv_sec = timeout_ms / 1000;
    t.it_value.tv_usec = (timeout_ms % 1000) * 1000;
    t.it_interval.tv_sec = 1;
    ::setitimer(ITIMER_REAL, &t, nullptr);
  }
  ~OpenAlarm() {
    struct itimerval t {};
    ::setitimer(ITIMER_REAL, &t, nullptr);
    ::sigaction(SIGALRM, &old_, nullptr);
  }
  bool fired() const { return g_alarms > 0; }

 private:
  struct sigaction old_ {};
};

Error timeout_error(const std::string& vnl, int timeout_ms) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", timeout_ms / 1000.0);
  return Error::make(ErrorKind::kSetup, "open VDE network " + vnl + ": the switch accepted the "
                                        "connection but did not answer within " + secs + " s")
      .hint("vde_switch does this when all its ports are taken (vde_switch -n NUM, 32 by "
            "default): stop some of its users, or start it with more ports");
}

// Whether every entry of `dir` is one the netnode plugin makes: "ctl" and "fdN" sockets.
bool only_node_sockets(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool ok = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if ((n != "ctl" && !str::starts_with(n, "fd")) ||
        ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode)) {
      ok = false;
      break;
    }
  }
  ::closedir(d);
  return ok;
}

// Before a netnode VNL makes its directory: nothing there, or a stale one (removed), or an
// error that says whose it is.
Result<void> reclaim_node_dir(const std::string& vnl, const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) < 0) return Ok{};  // the plugin reports what is wrong
  auto not_a_switch = [&](const std::string& why) {
    return Error::make(ErrorKind::kSetup, "open VDE network " + vnl + ": " + dir + " exists and is not a switch (" + why + ")")
        .hint("give a path that does not exist: the switch makes it, and removes it when it ends");
  };
  if (!S_ISDIR(st.st_mode)) return not_a_switch("not a directory");
  if (st.st_uid != ::geteuid()) return not_a_switch("not yours");
  if (!only_node_sockets(dir)) return not_a_switch("it holds other files");
  std::string ctl = dir + "/ctl";
  struct sockaddr_un sun {};
  sun.sun_family = AF_UNIX;
  if (ctl.size() < sizeof sun.sun_path && ::access(ctl.c_str(), F_OK) == 0) {
    std::memcpy(sun.sun_path, ctl.c_str(), ctl.size());
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s && ::connect(s.get(), reinterpret_cast<struct sockaddr*>(&sun), sizeof sun) == 0) {
      struct ucred cred {};
      socklen_t len = sizeof cred;
      std::string owner;
      if (::getsockopt(s.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
        owner = " (pid " + std::to_string(cred.pid) + ")";
      std::string path = vnl.substr(vnl.find("://") + 3);
      return Error::make(ErrorKind::kSetup, "open VDE network " + vnl + ": a switch is already running at " + dir + owner)
          .hint("join it with --net vde://" + path + ", or give switch:// a path of its own");
    }
  }
  // Stale: its owner is gone (killed: vde_close never ran). Remove what it left.
  DIR* d = ::opendir(dir.c_str());
  if (d) {
    while (struct dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        ::unlinkat(::dirfd(d), e->d_name, 0);
    ::closedir(d);
  }
  if (::rmdir(dir.c_str()) < 0 && errno != ENOENT)
    return Error::sys("remove the stale switch directory", errno, dir);
  return Ok{};
}

}  // namespace

std::string node_dir(const std::string& vnl) {
  size_t sep = vnl.find("://");
  if (sep == std::string::npos) return "";
  std::string scheme = vnl.substr(0, sep);
  if (scheme != "switch" && scheme != "hub" && scheme != "multi" && scheme != "bonding") return "";
  std::string path = vnl.substr(sep + 3);
  path = path.substr(0, path.find('['));  // switch:///tmp/sw[mode=0600]
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) {  // libvdeplug's default, as it makes it
    struct passwd pw, *found = nullptr;
    char buf[4096];
    ::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found);
    path = found ? std::string("/tmp/vdenode_") + pw.pw_name : "/tmp/vdenode_u" + std::to_string(::geteuid());
  }
  return path;
}

Result<struct vdeconn*> open_vde(const std::string& vnl, int answer_fd, int timeout_ms) {
  if (std::string dir = node_dir(vnl); !dir.empty()) VU_TRY_VOID(reclaim_node_dir(vnl, dir));
  std::string hard = "E" + timeout_error(vnl, timeout_ms).to_string();
  g_hard_len = std::min(hard.size(), sizeof g_hard_message);
  std::memcpy(g_hard_message, hard.data(), g_hard_len);
  g_answer_fd = answer_fd;
  VDECONN* c;
  bool fired;
  int err;
  {
    OpenAlarm alarm(timeout_ms);
    c = vde_open(const_cast<char*>(vnl.c_str()), const_cast<char*>("vu"), nullptr);
    err = errno;
    fired = alarm.fired();
  }
  if (c) return c;
  if (fired) return timeout_error(vnl, timeout_ms);
  Error e = Error::sys("open VDE network", err, vnl);
  if (err == EPROTONOSUPPORT)
    return std::move(e).hint("no libvdeplug plugin for this scheme (install it, or check the "
                             "spelling: vde://, switch://, hub://, ptp://, vxvde://, udp://, cmd://)");
  if (err == ENOENT || err == ECONNREFUSED)
    return std::move(e).hint("is the switch running? (vde_switch -s PATH, or use switch://PATH)");
  return e;
}

}  // namespace vu::vdens
