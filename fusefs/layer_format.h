// fusefs/layer_format.h — overlayfs's layer format ("userxattr"), as every copy-on-write of vu
// writes and reads it: the kernel's overlay (ns backend), vu-cowfs (fusefs/cowfs.cc) and the pvm
// monitor's own (pvm/cow.h). One layer serves them all, so the format lives here, once.
//
//   - a whiteout (a name deleted from the lower layer) is a 0/0 character device;
//   - an opaque directory (its lower namesake's entries hidden) carries user.overlay.opaque=y;
//   - user.overlay.* attributes are the layer's own bookkeeping, hidden from the view; the
//     view's own user.overlay.* attributes are stored escaped as user.overlay.overlay.* (as
//     overlayfs does since Linux 6.7).
//
//   if (is_whiteout(st)) …;                      // lstat of a name in the layer
//   make_whiteout(dirfd, "name");                // rm of a lower file
//   set_opaque_at(dirfd, "name");                // mkdir where a whiteout stood
//   ::lsetxattr(p, stored_xattr_name(n).c_str(), …);  // the view's setxattr
#pragma once

#include <linux/openat2.h>
#include <sys/stat.h>

#include <cstddef>
#include <string>

namespace vu::layer_format {

inline constexpr char kOpaque[] = "user.overlay.opaque";
inline constexpr char kPrivatePrefix[] = "user.overlay.";
inline constexpr char kEscaped[] = "user.overlay.overlay.";

bool is_whiteout(const struct stat& st);
// mknodat of a whiteout; false with errno.
bool make_whiteout(int dirfd, const char* name);

// openat2(2) in a layer, retried while it says EAGAIN (RESOLVE_* lookups may ask for a retry
// under a concurrent rename); the descriptor or -1 with errno.
long openat2_retry(int dirfd, const char* path, const struct open_how& how);

// The opaque mark of `name` in the directory dirfd (any descriptor, O_PATH too), the symlink
// `name` itself not followed; an empty name: dirfd's own object.
bool is_opaque_at(int dirfd, const char* name);
// Sets it; false with errno.
bool set_opaque_at(int dirfd, const char* name);

// user.overlay.*: an attribute name the layer keeps apart from the view's.
bool is_private_xattr(const char* name);
// The layer's own bookkeeping (private and not an escaped name of the view's): never copied
// up, never shown.
bool is_layer_xattr(const char* name);
// The name a view's attribute is stored under in the layer.
std::string stored_xattr_name(const char* view_name);
// The view's names among `len` bytes of stored names (listxattr's answer): the layer's own
// left out, escaped ones unescaped.
std::string view_xattr_names(const char* stored, size_t len);

}  // namespace vu::layer_format
