// pvm/path_map.h — the view's mount table without a mount namespace, and path resolution
// against it the way the kernel resolves paths.
//
//   PathMap map;
//   VU_TRY_VOID(map.add({"/mnt", "/srv/data", true}));        // --bind /srv/data:/mnt:ro
//   Resolved r = map.resolve({"/", "/"}, "/mnt/../etc/passwd", true, self);
//   // r.host == "/etc/passwd", r.view == "/etc/passwd", r.moved == true (crossed a mount)
//
// A path is walked one component at a time in *view* terms: each step checks whether the view
// path reached is a mountpoint (then the walk continues in the mount's host directory), lstat()s
// the host object otherwise, expands symlinks (absolute ones restart at the view's root) and
// treats `..` as the parent of the canonical view path, so `..` at the root of a bound directory
// leads to the mountpoint's parent, as it does in a mount namespace. Never string prefixes of the
// caller's path: only canonical (symlink-free) view paths are compared with mountpoints.
//
// `moved` tells whether the walk left the lookup the kernel would do on the host with the same
// arguments (it stepped onto a mountpoint or `..` left a mount's root). When it is false, the
// monitor lets the kernel perform the call itself (exactly, with the caller's credentials).
//
// The host path is longer than the view's (a mount's host directory, a layer's root): the walk's
// and the monitor's calls take it as a (descriptor, rest) pair when it is too long for the kernel
// (pvm/host_at.h), so only the view's path length decides ENAMETOOLONG, as on ns.
//
// /proc/self and /proc/thread-self name the calling process, not the monitor; magic links under
// /proc/PID (fd/N, cwd, exe, root) are followed to the object they name.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace vu::pvm {

class Cow;  // pvm/cow.h

struct Mount {
  std::string view;  // absolute, normalized path in the view
  std::string host;  // absolute host path of what is seen there (canonical); a cow's lower
  bool read_only = false;
  // A copy-on-write directory (--cow): `host` is its lower layer, lookups below it are merged
  // lookups of the cow's layer over it (pvm/cow.h).
  std::shared_ptr<Cow> cow;
};

// Where an object below a copy-on-write directory is (pvm/cow.h).
struct CowNode {
  int layer = 0;             // 1: the layer (upper), 2: the lower directory, 0: not found
  bool in_lower = false;     // the lower layer has this path visible (an upper copy may hide it)
  bool lower_below = false;  // a directory whose lower entries show through (merged)
  bool whiteout = false;     // not found because a whiteout hides the name
  dev_t lower_dev = 0;       // the lower object's, when in_lower
  ino_t lower_ino = 0;
  mode_t lower_type = 0;
};

struct Start {  // where a relative path begins (a dirfd's or the cwd's location)
  std::string view;
  std::string host;
};

struct Caller {  // for /proc/self and /proc/thread-self
  pid_t tgid = 0;
  pid_t tid = 0;
};

struct Resolved {
  int err = 0;          // errno of the lookup itself (ENOENT of a parent, ENOTDIR, ELOOP, …)
  bool exists = false;  // the final component exists (st is its lstat, or stat when followed)
  struct stat st {};
  std::string view;     // canonical view path of the final object
  std::string host;     // host path of it (its parent's host path + name when it does not exist)
  bool moved = false;   // the view's lookup differs from the host's (see above)
  bool mountpoint = false;  // the final object is a mountpoint of the view
  bool trailing_slash = false;  // the path ended with '/' (a name to create keeps it in host)
  // ENAMETOOLONG from the host for a component longer than NAME_MAX: 1 (a directory on the
  // way) or 2 (the final name); view and host are then that component's. fuse_long_name()
  // (pvm/fuse_client.h) asks a FUSE program of environment A instead, and when the program
  // has no such final name leaves err 0, exists false and fuse_long set: a creating call asks
  // the program too (fuse_make_long), every other one is ENOENT.
  int long_name = 0;
  bool fuse_long = false;
  const Mount* mount = nullptr;  // the mount that covers the final object, if any
  bool read_only() const { return mount && mount->read_only; }
  // Below a copy-on-write directory: the cow, the object's path relative to its root ("." for
  // the root) and where it was found (host is that layer's path; for a missing name, the
  // layer's). moved is always true there: the monitor answers every call.
  Cow* cow = nullptr;
  std::string rel;
  CowNode node;
};

class PathMap {
 public:
  // Adds a mount on top of the table: a mount on the same or an enclosing view path hides the
  // ones below it, as in a mount namespace.
  void add(Mount m);
  bool empty() const { return mounts_.empty(); }
  bool has_cow() const { return has_cow_; }  // some mount is copy-on-write
  const std::vector<Mount>& mounts() const { return mounts_; }

  // The mount covering a canonical view path (longest mountpoint prefix), or nullptr.
  const Mount* covering(std::string_view view) const;
  const Mount* mountpoint(std::string_view view) const;
  // Host path of a canonical view path.
  std::string to_host(std::string_view view) const;
  // View path of a host path: through the deepest mount whose source contains it, else the
  // host path itself when no mountpoint hides it, else "" (not reachable in the view).
  std::string to_view(std::string_view host) const;
  // True when some mountpoint lies strictly below `view` (a listing of it would need them).
  bool has_mounts_below(std::string_view view) const;

  // Resolves `path` from `start` (used only when path is relative). follow: expand a symlink in
  // the final component. A trailing slash requires a directory and follows.
  Resolved resolve(const Start& start, std::string_view path, bool follow, Caller caller) const;

 private:
  std::vector<Mount> mounts_;
  bool has_cow_ = false;
};

// "/a/./b//c/" -> "/a/b/c" (lexical; `..` is not allowed in mount targets and sources).
std::string normalize(std::string_view path);
// True when `path` is `dir` or lies below it (component-wise).
bool is_within(std::string_view path, std::string_view dir);

}  // namespace vu::pvm
