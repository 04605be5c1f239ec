#include "base/temp_dir.h"

#include <ftw.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace vu {

Result<TempDir> TempDir::make(const char* prefix) {
  const char* dir = std::getenv("TMPDIR");
  return make_in(dir && *dir ? dir : "/tmp", prefix);
}

Result<TempDir> TempDir::make_in(const std::string& parent, const char* prefix) {
  std::string path = parent + "/" + prefix + ".XXXXXX";
  if (!::mkdtemp(path.data())) return Error::sys("mkdtemp", errno, path);
  return TempDir(std::move(path));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  // Directories we cannot read (overlayfs leaves its work/work at mode 000) are opened up
  // first, top-down, so the removal below can descend into them.
  ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_D || type == FTW_DNR) ::chmod(p, (st->st_mode & 07777) | S_IRWXU);
        return 0;
      },
      16, FTW_PHYS);
  ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) < 0 ? 0 : 0; },
      16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace vu
