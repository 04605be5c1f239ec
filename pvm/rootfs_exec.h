// pvm/rootfs_exec.h — programs of a root tree (--rootfs) run with the tree's own dynamic loader.
//
// On the pvm backend the view's / is a path map entry (/ -> DIR), but the kernel's execve looks
// a binary's PT_INTERP (/lib64/ld-linux-x86-64.so.2) up on the host's filesystem: a Debian
// program would run with the host's loader, an Alpine one would not run at all. So, as PRoot
// does, the monitor's execve stop (Monitor::Core::plan_seccomp_stop, on a ptrace worker) turns
//     execve("/usr/bin/ls", ["ls", "-l"], envp)
// into
//     execve(HOST/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2,
//            ["/lib64/ld-linux-x86-64.so.2", "--argv0", "ls", "/usr/bin/ls", "-l"], envp)
// (the loader's host path, found by resolving PT_INTERP in the view; the program as a canonical
// view path, which the loader opens through the path map like every library after it).
//   - static binaries (no PT_INTERP, static-pie included) and the loader itself run directly;
//   - #! scripts: the interpreter is looked up in the view (the monitor already did that), and
//     when it is itself dynamically linked it goes through its loader the same way, with
//     argv[0] the interpreter as the #! line names it (what binfmt_script gives);
//   - --argv0 is passed only to loaders that know it (glibc >= 2.33, musl >= 1.1.21, found by
//     the option's name in the loader file, cached per file); an older one shows the program's
//     path as argv[0];
//   - the kernel's checks that no longer happen on the program itself are made by the monitor:
//     a regular file, execute permission (EACCES), a missing loader (ENOENT, as the kernel says).
//   - /proc/PID/exe names the loader after such an exec; readlink of it (and of
//     /proc/self/exe, /proc/PID/task/TID/exe) answers the program's view path instead (ExeTable:
//     set when the execve is rewritten, kept only while /proc/PID/exe still names that loader,
//     inherited over fork, dropped at exit).
// Limits (documented in the README too): /proc/PID/cmdline and the auxiliary vector (AT_EXECFN,
// AT_ENTRY) show the loader's command line; opening /proc/self/exe opens the loader; a program
// that is executable but not readable cannot run (the loader must read it; the kernel only
// maps it); execveat(fd, "", AT_EMPTY_PATH) (fexecve) of a dynamically linked program runs the
// host's loader; 32-bit programs are refused by the filter as everywhere on pvm.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>

namespace vu::pvm {

// What an executable file needs to run: 0 with *interp empty for a static ELF (or one without
// PT_INTERP), 0 with *interp the PT_INTERP string, ENOEXEC when the file is not a 64-bit ELF
// the loader can take (let the kernel decide), another errno when it cannot be read.
int elf_interp(const std::string& host, std::string* interp);

// Whether the loader at `host` understands --argv0 (cached by device, inode and mtime).
bool loader_knows_argv0(const std::string& host);

// The program each process of the view runs when /proc/PID/exe shows its loader.
class ExeTable {
 public:
  // An execve of `pid` through `loader` (a host path) running the program `view`; view "": an
  // execve the kernel runs as it is.
  void planned(pid_t pid, std::string view, std::string loader);
  void forked(pid_t parent, pid_t child);
  void exited(pid_t pid);
  // The program's view path when /proc/PID/exe names `exe_host` (what the link reads) and that is
  // the loader that runs it; else "".
  std::string lookup(pid_t pid, const std::string& exe_host) const;

 private:
  struct Run {
    std::string view, loader;
  };
  mutable std::mutex mu_;
  std::map<pid_t, Run> running_;
};

// The pid named by a host path /proc/PID/exe or /proc/PID/task/TID/exe (TID), else 0.
pid_t proc_exe_pid(const std::string& host);

}  // namespace vu::pvm
