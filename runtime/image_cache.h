// runtime/image_cache.h — where `vu run --rootfs ARCHIVE` finds the tree it unpacked before,
// shared by vu (which looks) and vu-unpack (which fills the cache; runtime/unpack_main.cc).
//
//   $XDG_CACHE_HOME/vu (else ~/.cache/vu)
//     trees/SHA256      a tree, named by the archive's content
//     by-stat/KEY       -> ../trees/SHA256, KEY = the archive's device, inode, size and mtime
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace vu::image_cache {

inline std::string dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && xdg[0] == '/') return std::string(xdg) + "/vu";
  const char* home = std::getenv("HOME");
  return std::string(home && home[0] == '/' ? home : "/tmp") + "/.cache/vu";
}

inline std::string stat_key(const struct stat& st) {
  char key[128];
  std::snprintf(key, sizeof key, "%lx-%lx-%lx-%lx.%09ld", static_cast<unsigned long>(st.st_dev),
                static_cast<unsigned long>(st.st_ino), static_cast<unsigned long>(st.st_size),
                static_cast<unsigned long>(st.st_mtim.tv_sec), static_cast<long>(st.st_mtim.tv_nsec));
  return key;
}

}  // namespace vu::image_cache
