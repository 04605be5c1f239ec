#include "base/temp_dir.h"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace vu {

namespace {
std::string tmp_parent() {
  const char* dir = std::getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}
}  // namespace

Result<TempDir> TempDir::make(const char* prefix) { return make_in(tmp_parent(), prefix); }

Result<TempDir> TempDir::make_owned(const char* prefix) { return make_owned(tmp_parent(), prefix); }

Result<TempDir> TempDir::make_in(const std::string& parent, const char* prefix) {
  std::string path = parent + "/" + prefix + ".XXXXXX";
  if (!::mkdtemp(path.data())) return Error::sys("mkdtemp", errno, path);
  return TempDir(std::move(path));
}

namespace {
// Removes a directory tree that only its owner can write (so nothing in it can be swapped under
// us), opening unreadable directories first.
void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_D || type == FTW_DNR) ::chmod(p, (st->st_mode & 07777) | S_IRWXU);
        return 0;
      },
      16, FTW_PHYS);
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) < 0 ? 0 : 0; },
      16, FTW_DEPTH | FTW_PHYS);
}
}  // namespace

Result<TempDir> TempDir::make_owned(const std::string& parent, const char* prefix) {
  const std::string lead = std::string(prefix) + ".";
  if (DIR* d = ::opendir(parent.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name.substr(0, lead.size()) != lead) continue;
      char* end;
      long pid = std::strtol(e->d_name + lead.size(), &end, 10);
      if (pid <= 0 || *end != '.' || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
      struct stat st;
      std::string path = parent + "/" + e->d_name;
      if (::lstat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
      remove_tree(path);
    }
    ::closedir(d);
  }
  std::string path = parent + "/" + lead + std::to_string(::getpid()) + ".XXXXXX";
  if (!::mkdtemp(path.data())) return Error::sys("mkdtemp", errno, path);
  return TempDir(std::move(path));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  remove_tree(path_);
}


}  // namespace vu
