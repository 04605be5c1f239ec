// runtime/rootfs.h — --rootfs DIR: another tree (a distribution's root) as the view's /.
//
//   spec.rootfs = "/srv/debian";
//   VU_TRY_VOID(expand_rootfs(spec));   // from finalize(): spec.mounts now starts with the
//                                       // mounts that make DIR a usable root
//
// The view's / is DIR, read-only (a copy-on-write layer over it comes with named containers),
// with the host's /proc and /sys (read-only), a minimal /dev on a tmpfs (null zero full random
// urandom tty bound from the host, the host's devpts, /dev/shm, /dev/fd and std* links), a
// private /tmp, the caller's $HOME (unless --no-home), /etc/hosts and (without a slirp
// network, which brings its own) /etc/resolv.conf from the host, and /etc/passwd and /etc/group
// of the tree with the caller's user and group added when the tree lacks them (as toolbox does).
// Every other mount of the spec applies on top, and its sources are host paths.
// oci:LAYOUT[:TAG]: the config's User runs the command (unless --root): uid 0 is --root, any
// other is the caller mapped to that uid/gid in the view (no subordinate ids needed; with
// --map-users they fill the ids around it).
//
// The mounts are in view paths with the root first ({bind DIR -> /}): the pvm backend maps them
// as they are (and runs the tree's programs with its own loader: runtime/rootfs_pvm.h); the ns backend binds DIR onto itself, mounts the rest below it and pivots into it
// (there is no other way to change a mount namespace's root).
#pragma once

#include "base/error.h"
#include "runtime/view_spec.h"

namespace vu {

// Checks spec.rootfs (a directory with a /bin/sh, no --cow/--fuse/--mount yet) and prepends its
// mounts to spec.mounts. The generated /etc/passwd and /etc/group live until vu exits.
Result<void> expand_rootfs(ViewSpec& spec);

// The user's line for the tree's /etc/passwd when `passwd` (its text) has none for `uid`.
std::string passwd_line_for(const std::string& passwd, uid_t uid, gid_t gid, const std::string& name,
                            const std::string& home);
// The same for /etc/group.
std::string group_line_for(const std::string& group, gid_t gid, const std::string& name);

// An OCI image config's User — "UID", "UID:GID", "NAME" or "NAME:GROUP" — as ids, names looked
// up in the tree's /etc/passwd and /etc/group (their texts). Without a group: the user's
// primary group from /etc/passwd, else 0 (as Docker and Podman do). A name the tree lacks is a
// usage error saying so.
Result<std::pair<uint32_t, uint32_t>> image_user_ids(const std::string& user, const std::string& passwd,
                                                     const std::string& group);

}  // namespace vu
