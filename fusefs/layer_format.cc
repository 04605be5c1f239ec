#include "fusefs/layer_format.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vu::layer_format {
namespace {
// The *xattr calls have no *at() form: the name through the directory's descriptor in /proc
// (the descriptor's own object when name is empty: the magic link is followed then).
std::string proc_at(int dirfd, const char* name) {
  std::string p = "/proc/self/fd/" + std::to_string(dirfd);
  if (*name) p += std::string("/") + name;
  return p;
}
}  // namespace

bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

bool make_whiteout(int dirfd, const char* name) { return ::mknodat(dirfd, name, S_IFCHR | 0, makedev(0, 0)) == 0; }

long openat2_retry(int dirfd, const char* path, const struct open_how& how) {
  long fd;
  do fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  return fd;
}

bool is_opaque_at(int dirfd, const char* name) {
  char v[4];
  const std::string p = proc_at(dirfd, name);
  ssize_t n = *name ? ::lgetxattr(p.c_str(), kOpaque, v, sizeof v) : ::getxattr(p.c_str(), kOpaque, v, sizeof v);
  return n == 1 && v[0] == 'y';
}

bool set_opaque_at(int dirfd, const char* name) {
  const std::string p = proc_at(dirfd, name);
  return (*name ? ::lsetxattr(p.c_str(), kOpaque, "y", 1, 0) : ::setxattr(p.c_str(), kOpaque, "y", 1, 0)) == 0;
}

bool is_private_xattr(const char* name) { return std::strncmp(name, kPrivatePrefix, sizeof kPrivatePrefix - 1) == 0; }

bool is_layer_xattr(const char* name) {
  return is_private_xattr(name) && std::strncmp(name, kEscaped, sizeof kEscaped - 1) != 0;
}

std::string stored_xattr_name(const char* view_name) {
  return is_private_xattr(view_name) ? std::string(kEscaped) + (view_name + sizeof kPrivatePrefix - 1)
                                     : std::string(view_name);
}

std::string view_xattr_names(const char* stored, size_t len) {
  std::string out;
  for (const char* p = stored; p < stored + len; p += std::strlen(p) + 1) {
    if (std::strncmp(p, kEscaped, sizeof kEscaped - 1) == 0)
      out += std::string(kPrivatePrefix) + (p + sizeof kEscaped - 1) + '\0';
    else if (!is_private_xattr(p))
      out.append(p, std::strlen(p) + 1);
  }
  return out;
}

}  // namespace vu::layer_format
