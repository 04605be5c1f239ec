// pvm/fs.h — the paths module: calls that name files (open, stat, access, readlink, getcwd, names made
// and removed, attributes, xattrs, statfs, inotify), the mount table, EROFS and mirrors.
// Each handler answers one trapped call (see pvm/call.h for Call and Answer); dispatch() in
// pvm/monitor.cc picks the handler by system call number.
#pragma once

#include "pvm/call.h"

namespace vu::pvm {

bool fd_read_only(const Config& cfg, Call& c, int fd);
Answer do_open(const Config& cfg, Call& c, int dirfd, uint64_t path, int flags, mode_t mode);
Answer do_fstat(const Config& cfg, Call& c, int fd, uint64_t buf);
Answer do_stat(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t buf, int flags);
Answer do_statx(const Config& cfg, Call& c);
Answer do_access(const Config& cfg, Call& c, int dirfd, uint64_t path, int mode, int flags);
Answer do_readlink(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t buf, size_t size);
Answer do_getcwd(const Config& cfg, Call& c);
Answer do_mkdir(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode);
Answer do_mknod(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode, dev_t dev);
Answer do_symlink(const Config& cfg, Call& c, uint64_t target, int dirfd, uint64_t path);
Answer do_remove(const Config& cfg, Call& c, int dirfd, uint64_t path, bool dir);
Answer do_rename(const Config& cfg, Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp, unsigned flags);
Answer do_link(const Config& cfg, Call& c, int olddir, uint64_t oldp, int newdir, uint64_t newp, int flags);
Answer do_chmod(const Config& cfg, Call& c, int dirfd, uint64_t path, mode_t mode, int flags);
Answer do_chown(const Config& cfg, Call& c, int dirfd, uint64_t path, uint64_t u, uint64_t g, int flags);
Answer do_fchown(const Config& cfg, Call& c);
Answer do_truncate(const Config& cfg, Call& c);
Answer do_utimes(const Config& cfg, Call& c);
Answer do_xattr(const Config& cfg, Call& c);
Answer do_statfs(const Config& cfg, Call& c);
Answer do_inotify_add_watch(const Config& cfg, Call& c);
Answer do_fd_change(const Config& cfg, Call& c);  // fchmod, fsetxattr, fremovexattr

}  // namespace vu::pvm
