// fusefs/fusefs.h — filesystems in a view: FUSE programs, copy-on-write layers, images.
//
//   --fuse 'fuse2fs -o fakeroot disk.img' /mnt    FuseMount: any FUSE program, run in the view
//   --mount image:disk.img:/mnt                   FuseMount picked by the image's magic bytes
//   --cow /tmp/layer:/usr                         CowSpec: kernel overlayfs, else vu-cowfs (FUSE)
//
// The view is built in this order: binds and tmpfs (bindmount/), kernel copy-on-write layers
// (overlayfs, mounted by the first process like a bind), then FUSE filesystems in the order
// given, started by the keeper (keeper.h) inside the view's namespaces.
//
// Copy-on-write semantics, the same in both implementations (tests/integration/fs_test.sh runs
// one suite against each): writes copy the file up into LAYER, deletes leave an overlayfs
// whiteout (a 0/0 character device), a directory deleted and made again is opaque
// (user.overlay.opaque=y, overlayfs's "userxattr" convention), so either implementation reads a
// layer the other wrote. Inside TARGET every file is yours: owned by your id in the view (root
// under --root), modes kept. Kernel overlayfs can give that only when every file below TARGET
// is already yours (copy-up cannot keep an owner the user namespace does not map: EOVERFLOW),
// so `auto` walks TARGET first and picks the kernel only then.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "bindmount/bindmount.h"

namespace vu::fusefs {

enum class CowImpl { kAuto, kKernel, kFuse };

struct CowSpec {
  std::string layer;   // host directory that receives the changes (overlayfs upperdir)
  std::string target;  // absolute path in the view
  CowImpl impl = CowImpl::kAuto;
  std::string why;     // filled by choose_cow(): why this implementation
  bool operator==(const CowSpec&) const = default;
};

// A FUSE filesystem started inside the view: argv runs with the view's identity plus
// CAP_SYS_ADMIN in the view's user namespace (to mount), in the command's working directory.
struct FuseMount {
  std::string target;
  std::vector<std::string> argv;
  std::string what;  // for messages and --explain
  // A copy-on-write root: mounted on `target` (an empty staging directory), the keeper binds the
  // view's other mounts into it, and the first process makes it the root (pivot_root).
  bool new_root = false;
  bool operator==(const FuseMount&) const = default;
};

// "LAYER:TARGET[:kernel|fuse]". LAYER relative to the current directory; it is created if
// missing (its parent must exist).
Result<CowSpec> parse_cow(std::string_view arg);
// --fuse 'CMD' TARGET: CMD is a shell command line; the mountpoint is appended as its last
// argument (sh -c 'exec CMD "$1"').
Result<FuseMount> parse_fuse(std::string_view cmd, std::string_view target);
// "image:FILE:TARGET[:ro]": ext2/3/4 → fuse2fs, squashfs → squashfuse.
Result<FuseMount> parse_mount(std::string_view arg);
// The program m runs: argv[0]'s base name, or CMD's first word for --fuse's sh -c 'exec CMD "$1"'.
std::string program_of(const FuseMount& m);
// libvu-fuse-shim.so (pvm/fuse_shim.c): $VU_FUSE_SHIM_LIB, else next to vu or in ../lib/vu;
// empty when not found.
std::string fuse_shim_library();
// The "LD_PRELOAD=…" m's program gets on ns and in environment B, or empty (its environment is
// left as it is): fuse2fs, and every --fuse line (fuse2fs may be behind sh, env, nice or a
// script), get the shim, which keeps names longer than ext2/3/4 allows out of the image
// (fuse2fs 1.47 would write them as a corrupt directory entry) and leaves other programs alone.
// `current`: LD_PRELOAD's value in the environment it replaces (kept, after the shim), or null.
// (Environment A preloads the shim itself, pvm/fuse_client.h: it also serves fuse2fs's /dev/fuse.)
std::string fuse_program_preload(const FuseMount& m, const char* current);
// The environment of m's program: `base` with fuse_program_preload's LD_PRELOAD in place of
// base's own; empty when the program gets none (it runs with `base` as it is).
std::vector<std::string> fuse_program_env(const FuseMount& m, const std::vector<std::string>& base);

// Decides kernel or FUSE for a layer (uid/gid: the caller's, whose files the user namespace
// maps) and checks the host side: LAYER a writable directory (or creatable), TARGET a
// directory. Changes nothing on the host. Fills spec.impl and spec.why.
Result<void> choose_cow(CowSpec& spec, uid_t uid, gid_t gid);

// Creates LAYER if missing and checks it can hold whiteouts; then how the chosen layer is
// realized. Kernel: `mount` (an overlay MountSpec) plus `work`, the
// overlayfs work directory beside LAYER (same filesystem), removed when this goes away.
// FUSE: `fuse` runs vu-cowfs.
// The kernel's work directory, `.vu-cow-work.XXXXXX`, is locked (flock) by this vu for as long
// as it lives: a later prepare_cow removes the ones whose lock it can take (their vu was
// killed), never one a running vu holds.
struct CowMount {
  bool kernel = false;
  bindmount::MountSpec mount;
  UniqueFd work_lock;  // before `work`: released after the directory is removed
  std::optional<TempDir> work;
  FuseMount fuse;
};
Result<CowMount> prepare_cow(const CowSpec& spec);

// Where vu-cowfs is: $VU_COWFS, else beside the running vu.
std::string cowfs_path();

std::string to_string(const CowSpec& c);

}  // namespace vu::fusefs
