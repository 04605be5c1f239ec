#include "userns/userns.h"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/strings.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vu::userns {

std::string IdMap::to_proc() const {
  std::string out;
  for (const IdRange& r : ranges)
    out += std::to_string(r.inside) + " " + std::to_string(r.outside) + " " +
           std::to_string(r.count) + "\n";
  return out;
}

std::vector<std::string> IdMap::to_args() const {
  std::vector<std::string> out;
  for (const IdRange& r : ranges) {
    out.push_back(std::to_string(r.inside));
    out.push_back(std::to_string(r.outside));
    out.push_back(std::to_string(r.count));
  }
  return out;
}

std::optional<SubIdRange> find_subid(std::string_view text, std::string_view user,
                                     unsigned long uid) {
  const std::string uid_s = std::to_string(uid);
  for (const std::string& line : str::split(text, '\n')) {
    std::string_view l = str::trim(line);
    if (l.empty() || l[0] == '#') continue;
    auto f = str::split(l, ':');
    if (f.size() != 3) continue;
    if (f[0] != user && f[0] != uid_s) continue;
    SubIdRange r;
    if (!str::parse_uint(f[1], 0xffffffffUL, &r.start) ||
        !str::parse_uint(f[2], 0xffffffffUL, &r.count) || r.count == 0)
      continue;
    return r;
  }
  return std::nullopt;
}

IdMap own_map(Identity identity, unsigned long own_id) {
  return own_map_as(identity == Identity::kRoot ? 0 : own_id, own_id);
}

IdMap own_map_as(unsigned long inside, unsigned long own_id) { return IdMap{{IdRange{inside, own_id, 1}}}; }

IdMap subid_map(Identity identity, unsigned long own_id, SubIdRange sub) {
  return subid_map_as(identity == Identity::kRoot ? 0 : own_id, own_id, sub);
}

IdMap subid_map_as(unsigned long inside, unsigned long own_id, SubIdRange sub) {
  // Ids below `inside` come from the start of the range, ids above from the rest (keep-id).
  IdMap m;
  unsigned long below = std::min(inside, sub.count);
  if (below) m.ranges.push_back({0, sub.start, below});
  m.ranges.push_back({inside, own_id, 1});
  if (sub.count > below) m.ranges.push_back({inside + 1, sub.start + below, sub.count - below});
  return m;
}

namespace {
int write_proc_file(const char* path, const char* data, size_t len) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, data, len);
  int err = n < 0 ? errno : (static_cast<size_t>(n) != len ? EIO : 0);
  ::close(fd);
  return err;
}
}  // namespace

int write_own_maps(const OwnMaps& maps, MapStage* stage) {
  static const char kDeny[] = "deny";
  *stage = MapStage::kSetgroups;
  int err = write_proc_file("/proc/self/setgroups", kDeny, sizeof kDeny - 1);
  // ENOENT: kernels before 3.19 have no setgroups file and need none.
  if (err && err != ENOENT) return err;
  *stage = MapStage::kUidMap;
  if ((err = write_proc_file("/proc/self/uid_map", maps.uid_map.data(), maps.uid_map.size())))
    return err;
  *stage = MapStage::kGidMap;
  if ((err = write_proc_file("/proc/self/gid_map", maps.gid_map.data(), maps.gid_map.size())))
    return err;
  *stage = MapStage::kNone;
  return 0;
}

int unshare_keep_ids(int extra_flags, MapStage* stage) {
  const unsigned long uid = ::geteuid(), gid = ::getegid();
  *stage = MapStage::kNone;
  if (::unshare(CLONE_NEWUSER | extra_flags) < 0) return errno;
  OwnMaps maps{own_map(Identity::kKeep, uid).to_proc(), own_map(Identity::kKeep, gid).to_proc()};
  return write_own_maps(maps, stage);
}

Result<void> run_newidmap(const char* prog, pid_t pid, const IdMap& map) {
  std::vector<std::string> args{prog, std::to_string(pid)};
  for (std::string& a : map.to_args()) args.push_back(std::move(a));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto pipe = VU_TRY(sys::pipe());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipe.second.get(), 2);
  pid_t child;
  int err = posix_spawnp(&child, prog, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err) {
    return Error::sys("run", err, prog)
        .hint("install Debian's uidmap package (newuidmap/newgidmap), or drop --map-users");
  }
  pipe.second.reset();
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipe.first.get(), buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok{};
  std::string m = str::join(args, " ") + " failed";
  if (!msg.empty()) m += ": " + std::string(str::trim(msg));
  return Error::make(ErrorKind::kSetup, m)
      .hint("check the caller's ranges in /etc/subuid and /etc/subgid (usermod --add-subuids)");
}

std::string current_user_name() {
  // /etc/passwd directly, not NSS: vu is linked statically for start-up time, and /etc/subuid
  // also accepts the numeric uid, which is the fallback for users from other databases.
  const std::string uid = std::to_string(::getuid());
  if (auto text = sys::read_file("/etc/passwd")) {
    for (const std::string& line : str::split(*text, '\n')) {
      auto f = str::split(line, ':');
      if (f.size() >= 3 && f[2] == uid) return f[0];
    }
  }
  return uid;
}

int raise_ambient(uint64_t caps, int* which) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  *which = -1;
  if (::syscall(SYS_capget, &hdr, data) < 0) return errno;
  data[0].inheritable |= static_cast<uint32_t>(caps);
  data[1].inheritable |= static_cast<uint32_t>(caps >> 32);
  if (::syscall(SYS_capset, &hdr, data) < 0) return errno;
  for (int c = 0; c < 64; ++c) {
    if (!(caps & (uint64_t{1} << c))) continue;
    *which = c;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) return errno;
  }
  return 0;
}

}  // namespace vu::userns
