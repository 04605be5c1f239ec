#include "base/temp_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/file.h>
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

// Removes a directory tree that only its owner can write (so nothing in it can be swapped under
// us), opening unreadable directories first.
void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_D || type == FTW_DNR) ::chmod(p, (st->st_mode & 07777) | S_IRWXU);
        return 0;
      },
      16, FTW_PHYS | FTW_MOUNT);
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) < 0 ? 0 : 0; },
      16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

// A pid is only a hint: in another pid namespace (a vu in a container or `unshare -p` sharing
// /dev/shm or $TMPDIR) a live vu's pid is "gone" here. The proof is the lock every live
// make_owned directory holds (flock on the directory, close-on-exec): one whose lock can be
// taken has no owner left. Its pid being gone here is checked first only to spare the opens.
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
      UniqueFd fd(::openat(::dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd || ::fstat(fd.get(), &st) < 0 || st.st_uid != ::geteuid()) continue;
      if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) continue;  // a live vu's, in another pid namespace
      remove_tree(parent + "/" + e->d_name);
    }
    ::closedir(d);
  }
  // Locked before use; a sweep (from another pid namespace) may have taken it between mkdtemp
  // and the lock: then it has no links left and we make another.
  for (int tries = 0; tries < 5; ++tries) {
    std::string path = parent + "/" + lead + std::to_string(::getpid()) + ".XXXXXX";
    if (!::mkdtemp(path.data())) return Error::sys("mkdtemp", errno, path);
    UniqueFd lock(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!lock || ::flock(lock.get(), LOCK_EX) < 0 || ::fstat(lock.get(), &st) < 0)
      return Error::sys("lock", errno, path);
    if (st.st_nlink == 0) continue;
    TempDir t(std::move(path));
    t.lock_ = std::move(lock);
    return t;
  }
  return Error::make(ErrorKind::kSetup, "mkdtemp: " + parent + "/" + lead + "*: the directory keeps disappearing");
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  remove_tree(path_);
}


}  // namespace vu
