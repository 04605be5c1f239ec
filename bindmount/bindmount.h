// bindmount/bindmount.h — mount plans applied inside a private mount namespace.
//
//   auto m = VU_TRY(vu::bindmount::parse_bind("/srv/data:/mnt:ro"));
//   VU_TRY_VOID(vu::bindmount::check_source(m));          // in the parent, before clone()
//   …in the child, after the user namespace has its maps:
//   vu::bindmount::Failure f;
//   if (!vu::bindmount::apply(mounts.data(), mounts.size(), &f)) report(f);   // async-signal-safe
//   …back in the parent: vu::bindmount::describe(mounts[f.index], f) names the item and errno.
//
// Mounts are applied in order; a later target may lie inside an earlier mount. A target that
// does not exist is created without touching the host: its deepest existing ancestor is
// covered by a tmpfs that mirrors it (see "Creating missing targets" in bindmount.cc). Binds are
// recursive unless "norec". Read-only uses mount_setattr(AT_RECURSIVE) so sub-mounts are
// read-only too (a classic MS_REMOUNT cannot do that), falling back to a remount that keeps the
// flags the kernel locks in an unprivileged namespace (nosuid, nodev, noexec) on old kernels.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace vu::bindmount {

// kMountpoint mounts nothing: it makes the directory `target` exist (as for any other kind) for
// a filesystem mounted there later (a FUSE program). kSymlink mounts nothing either: it makes
// `target` a symlink to `source` (its directory must be one vu made, e.g. a --tmpfs; a view's
// /dev/fd).
enum class Kind { kBind, kTmpfs, kOverlay, kMountpoint, kSymlink };

struct MountSpec {
  Kind kind = Kind::kBind;
  std::string source;   // kBind: host path (resolved inside the view at mount time)
  std::string target;   // absolute path inside the view
  bool read_only = false;
  bool recursive = true;
  std::string data;     // kTmpfs: mount data (size=, mode=); kOverlay: overlayfs options
                        // (fusefs::overlay_mount builds it: lowerdir is the target itself)
  bool host_source = false;  // kBind: the source is a host path even where an earlier mount of
                             // the view covers it (--rootfs: the ns backend binds before its
                             // pivot; the pvm backend must not resolve it in the new root)
  bool operator==(const MountSpec&) const = default;
};

// A path in the view as an option gives it: absolute, without "..", normalized ("//a/./b/" →
// "/a/b"). `what` names the option in the message ("--bind", "--cow", …).
Result<std::string> view_path(std::string_view target, std::string_view what);
// A host path from the command line, made absolute against the current directory now:
// building the view may change the working directory (a mirrored / is entered with chroot).
Result<std::string> host_path(std::string_view path);

// "SRC:DST[:OPT,OPT…]" with OPT one of ro, rw, rec, norec. ro_default for --ro-bind.
Result<MountSpec> parse_bind(std::string_view arg, bool ro_default = false);
// "DST[:size=N,mode=OCTAL]".
Result<MountSpec> parse_tmpfs(std::string_view arg);
// The target is absolute, normalized; for binds the source exists (stat) — the checks that can
// be made before any namespace exists. Names the item in the message.
Result<void> check(const MountSpec& m);
// One line for --explain and -v: "bind /a -> /b (ro)".
std::string to_string(const MountSpec& m);

enum class Stage { kNone = 0, kOpenTree, kSetAttr, kMoveMount, kBind, kRemount, kTmpfs, kTarget, kOverlay };
struct Failure {
  int index = -1;  // which MountSpec
  Stage stage = Stage::kNone;
  int err = 0;
};

// Applies the plan in order. Async-signal-safe (no allocation): callable between clone() and
// execve(). Returns false and fills *f on the first failure.
bool apply(const MountSpec* mounts, size_t n, Failure* f);
// The error for a Failure, naming the mount and explaining common errnos.
Error describe(const MountSpec& m, const Failure& f);

}  // namespace vu::bindmount
