// vdens/plug_children.h — the end of the commands a VNL started (cmd://, and any plugin that
// forks): vu-net and vu-vstack call end_plug_children() before vde_close().
//
// libvdeplug's vde_close() waits for the processes a plugin started (cmd://CMD runs CMD with the
// frames on its stdin/stdout): one that does not exit when its pipes close (`cmd://sleep 100`,
// a stuck ssh) held vu-net or vu-vstack in vde_close for as long as it lived, and with them the
// stderr vu's caller reads (`x=$(vu run … 2>&1)` waited that long); killed with its helper it
// lived on as an orphan. So the helper's children get SIGTERM, then SIGKILL after 1 s, before
// vde_close reaps them. They are not reaped here (waitid WNOWAIT): vde_close's waitpid is theirs.
// The helpers start no other children.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace vu::vdens {

// The pids of this process's children (every thread's).
inline std::vector<pid_t> plug_children() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char path[320];  // a d_name is at most 255 bytes
    std::snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    if (FILE* f = std::fopen(path, "re")) {
      long p;
      while (std::fscanf(f, "%ld", &p) == 1)
        if (p > 0) out.push_back(static_cast<pid_t>(p));
      std::fclose(f);
    }
  }
  ::closedir(d);
  return out;
}

inline void end_plug_children() {
  std::vector<pid_t> kids = plug_children();
  if (kids.empty()) return;
  for (pid_t p : kids) ::kill(p, SIGTERM);
  auto running = [&kids] {
    std::vector<pid_t> left;
    for (pid_t p : kids) {
      siginfo_t si{};
      if (::waitid(P_PID, static_cast<id_t>(p), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0) left.push_back(p);
    }
    return left;
  };
  for (int i = 0; i < 100; ++i) {  // 1 s
    kids = running();
    if (kids.empty()) return;
    const struct timespec ts{0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  for (pid_t p : kids) ::kill(p, SIGKILL);
}

}  // namespace vu::vdens
