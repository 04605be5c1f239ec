#include "pvm/rootfs_exec.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>
#include <vector>

#include "base/unique_fd.h"

namespace vu::pvm {

int elf_interp(const std::string& host, std::string* interp) {
  interp->clear();
  // (a FIFO or device swapped in since the lookup: not waited for, no terminal taken, refused)
  UniqueFd fd(::open(host.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY));
  if (!fd) return errno;
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return errno;
  if (!S_ISREG(st.st_mode)) return EACCES;  // what execve says of a non-regular file
  Elf64_Ehdr eh;
  if (::pread(fd.get(), &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh)) return ENOEXEC;
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_machine != EM_X86_64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256)
    return ENOEXEC;
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  const size_t len = ph.size() * sizeof(Elf64_Phdr);
  if (::pread(fd.get(), ph.data(), len, static_cast<off_t>(eh.e_phoff)) != static_cast<ssize_t>(len)) return ENOEXEC;
  for (const Elf64_Phdr& p : ph) {
    if (p.p_type != PT_INTERP) continue;
    if (p.p_filesz < 2 || p.p_filesz > 4096) return ENOEXEC;  // the kernel's bounds (PATH_MAX)
    std::string s(p.p_filesz, '\0');
    if (::pread(fd.get(), s.data(), s.size(), static_cast<off_t>(p.p_offset)) != static_cast<ssize_t>(s.size()))
      return ENOEXEC;
    if (s.back() != '\0') return ENOEXEC;
    s.resize(std::strlen(s.c_str()));
    if (s.empty()) return ENOEXEC;
    *interp = std::move(s);
    return 0;
  }
  return 0;
}

bool loader_knows_argv0(const std::string& host) {
  static std::mutex mu;
  static std::map<std::tuple<dev_t, ino_t, int64_t>, bool> known;
  UniqueFd fd(::open(host.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (64 << 20))
    return false;
  auto key = std::make_tuple(st.st_dev, st.st_ino, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = known.find(key); it != known.end()) return it->second;
  }
  // glibc's rtld compares "--argv0", musl's "argv0" after the dashes: the name is in the file.
  bool has = false;
  void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (m != MAP_FAILED) {
    has = ::memmem(m, static_cast<size_t>(st.st_size), "argv0", 6) != nullptr;
    ::munmap(m, static_cast<size_t>(st.st_size));
  }
  std::lock_guard<std::mutex> lock(mu);
  if (known.size() > 64) known.clear();
  known[key] = has;
  return has;
}

void ExeTable::planned(pid_t pid, std::string view, std::string loader) {
  std::lock_guard<std::mutex> lock(mu_);
  if (view.empty()) running_.erase(pid);
  else running_[pid] = {std::move(view), std::move(loader)};
}

void ExeTable::forked(pid_t parent, pid_t child) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(parent);
  if (it != running_.end()) running_[child] = it->second;
}

void ExeTable::exited(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.erase(pid);
}

std::string ExeTable::lookup(pid_t pid, const std::string& exe_host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = running_.find(pid);
  return it == running_.end() || it->second.loader != exe_host ? std::string() : it->second.view;
}

pid_t proc_exe_pid(const std::string& host) {
  // /proc/PID/exe or /proc/PID/task/TID/exe
  if (host.compare(0, 6, "/proc/") != 0 || !host.ends_with("/exe")) return 0;
  std::string mid = host.substr(6, host.size() - 6 - 4);
  size_t slash = mid.find('/');
  std::string num = mid;
  if (slash != std::string::npos) {
    if (mid.compare(slash, 6, "/task/") != 0) return 0;
    num = mid.substr(slash + 6);
  }
  if (num.empty() || num.size() > 9 || num.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(num));
}

}  // namespace vu::pvm
