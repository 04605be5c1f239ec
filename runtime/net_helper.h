// runtime/net_helper.h — starting and stopping vu-net, the view's network half.
//
//   auto net = VU_TRY(NetHelper::start(spec.net));   // uplinks are open when this returns
//   …the view's first process sends its taps on net.view_socket()…
//   net.stop();                                       // after the command; prints --net-stats
//
// vu-net is found next to the vu executable (or at $VU_NET_HELPER). It is started before the
// view's namespaces exist, so it opens the uplinks in the host's network namespace; `vu run`
// starts it even before parsing (prestart). Nothing waits for it to load: vu builds the view
// meanwhile. The view's first process sends its taps (and its mount namespace, which vu-net
// holds until it exits) and then waits for vu-net's one-message answer on the same socket —
// "R" (every uplink open) or "E<error>" — before it may exec, so a view never runs with its
// network half-built; error_from() turns an answer into the Error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/child.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "vdens/net_spec.h"

namespace vu {

class NetHelper {
 public:
  // Whose taps vu-net gets: a view's (made in its new network namespace, which goes with vu-net)
  // or those of `vu net attach` (in a namespace that lives on: closing them must remove them).
  enum class Taps { kView, kAttach };

  // Starts vu-net without its arguments, before vu has parsed its own: vu-net's exec and
  // loading (~3.5 ms on the reference VM) then overlap vu's start (~1.7 ms: parsing, the
  // plan). start() hands the arguments over; dropping the NetHelper unused makes vu-net exit.
  // Nothing when vu-net cannot be started (start() then reports why).
  static std::optional<NetHelper> prestart();
  // vu-net for `net`: `pre` (from prestart) when given and still alive, else a new one.
  static Result<NetHelper> start(const vdens::NetSpec& net, std::optional<NetHelper> pre = std::nullopt,
                                 Taps taps = Taps::kView);
  NetHelper(NetHelper&&) = default;
  ~NetHelper();
  // vu's end of the control socket: where the taps are sent (SCM_RIGHTS) and the answer read.
  int view_socket() const { return ctl_.get(); }
  // vu-net's answer on `fd` ("R", or "E<error>"), into buf: its length, or -1 with errno (0:
  // vu-net died without one). vu-net may fail and exit with the fds vu sent it unread; the
  // kernel then says ECONNRESET once, before the answer vu-net left, so this reads on past it.
  // No allocation: the ns backend's first process calls it.
  static ssize_t read_answer(int fd, char* buf, size_t size);
  // The Error for vu-net's answer when it was not "R" (empty: vu-net died).
  static Error error_from(std::string_view reply);
  // Closes the control socket. With --net-stats, waits (at most 2 s, then SIGKILL) for vu-net
  // to print them and exit; otherwise lets it finish tearing down the taps on its own, after
  // waiting (3 s at most) for it to close what holds a name (switch://PATH, -p's host ports).
  void stop();
  pid_t pid() const { return pid_; }
  // For supervise(): when `pid` is vu-net, reaped while the view runs, says so on stderr (a
  // "vu: vu-net … killed by signal N" line: the view's connections stall without it) and
  // forgets the process.
  void note_exit(pid_t pid, int wait_status);

 private:
  NetHelper() = default;
  static Result<NetHelper> spawn(std::vector<std::string> args);
  Child child_;
  UniqueFd ctl_;
  pid_t pid_ = -1;
  bool wait_ = false;
  bool wait_release_ = false;  // stop() waits until vu-net has closed the uplinks (switch://, -p)
};

// Where vu-net is: $VU_NET_HELPER, else next to /proc/self/exe.
std::string net_helper_path();

// Says on stderr that a network helper of the view ended before it (WHAT: "vu-net", "vu-vstack";
// ROLE: "the view's network"…): "vu: WHAT (pid N), ROLE, was killed by signal N (NAME): the view
// has no network from now on" — the view's connections end or stall without it.
void say_network_helper_gone(const char* what, const char* role, pid_t pid, int wait_status);

}  // namespace vu
