// fusefs/keeper.h — the process that runs a view's FUSE filesystems and takes them down.
//
// The view's first process, once its binds are mounted, starts the keeper with
// clone(CLONE_PARENT): a sibling of the command, child of vu, inside the view's namespaces and
// with the first process's capabilities in its user namespace. The keeper
//   1. becomes a child subreaper (FUSE programs that daemonize stay its children),
//   2. starts each FuseMount in order — stdout and stderr into a memfd, CAP_SYS_ADMIN ambient
//      so a non-root view can mount — and waits until its mount shows in /proc/self/mountinfo
//      (poll(POLLPRI) on it, and on the program's pidfd: no sleeps, no polling loop),
//   3. answers the first process on `ready_fd`: "R", or "E" and a message naming the program,
//      its exit status and its output (fuse2fs exits 0 when /dev/fuse is unusable: a program
//      that exits without mounting is a failure, whatever its status),
//   4. waits for end of file on `control_fd` (vu closes it when the command has exited and the
//      view's other processes are gone, or vu itself died), then unmounts in reverse order,
//      waits for the FUSE programs to finish writing (they flush on unmount: fuse2fs closes its
//      image), killing them after a deadline, and exits.
// Nothing is left mounted on any path: the mounts live in the view's mount namespace, which
// goes away with its last process.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fusefs/fusefs.h"

namespace vu::fusefs {

struct KeeperArgs {
  const std::vector<FuseMount>* mounts = nullptr;
  bool ambient_sys_admin = true;  // false under --root: uid 0 keeps its capabilities on exec
  int ready_fd = -1;
  int control_fd = -1;
};

// Runs in the keeper (after the clone); never returns.
[[noreturn]] void keeper_main(const KeeperArgs& args);

// True when the topmost mount on `target` in `mountinfo` (the text of /proc/PID/mountinfo) is a
// FUSE filesystem. Exposed for the unit tests.
bool fuse_mounted_at(const std::string& mountinfo, const std::string& target);
// A field of mountinfo as it is: the kernel escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s);

}  // namespace vu::fusefs
