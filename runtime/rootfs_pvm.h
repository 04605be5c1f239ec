// runtime/rootfs_pvm.h — --rootfs on the pvm backend (issue 17): what the path map of a root
// tree needs beyond its mounts (runtime/rootfs.h lists those; the pvm path map takes them as
// they are, / first).
//
//   pvm::Config cfg = …make_pvm_config…;
//   VU_TRY_VOID(rootfs_pvm_config(spec, cfg));   // at its end, when spec.rootfs
//
// - the monitor runs the tree's programs with the tree's own loader (pvm/rootfs_exec.h) and
//   answers /proc/PID/exe for them (Config::rootfs, Config::exe);
// - the fast path (pvm/accel.c, linked against the host's glibc) is preloaded into the tree's
//   programs only when the tree's libc defines every GLIBC_x version the library needs: it is
//   then seen at /proc/vu-pvm-accel.so (a one-file path map entry no listing shows); a musl or
//   older glibc tree runs without it (every call answered by the monitor: the same view, slower).
#pragma once

#include "base/error.h"
#include "pvm/monitor.h"
#include "runtime/view_spec.h"

namespace vu {

inline constexpr const char* kRootfsAccelView = "/proc/vu-pvm-accel.so";

Result<void> rootfs_pvm_config(const ViewSpec& spec, pvm::Config& cfg);

// --rootfs TREE --cow LAYER:/: the view's / is the monitor's copy-on-write directory (pvm/cow.h)
// over the tree, in the layer format the ns backend's overlayfs writes (a named container's
// layer serves both backends). The first mount of the map, so the tree's /proc, /dev… go on top.
Result<void> rootfs_pvm_cow_root(const ViewSpec& spec, const std::string& tree, pvm::Config& cfg);

// Whether a library needing the GLIBC_x versions named in `lib` (a file's bytes) can be loaded
// with the libc whose bytes are `libc`: each version name of the one is in the other.
bool glibc_versions_met(const std::string& lib, const std::string& libc);

}  // namespace vu
