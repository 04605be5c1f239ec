// base/unique_fd.h — move-only owner of a file descriptor.
//
//   UniqueFd fd = VU_TRY(vu::sys::open("/etc/hosts", O_RDONLY));
//   read(fd.get(), …);            // closed when fd goes out of scope
//   int raw = fd.release();       // give up ownership
//
// Fork-safety: the destructor only calls close(2), so a UniqueFd may be destroyed in a child
// between clone() and execve().
#pragma once

#include <cstdint>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>
#include <utility>

#include "base/error.h"

namespace vu {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

namespace sys {
// open(2) returning an owner; O_CLOEXEC is always added.
Result<UniqueFd> open(const std::string& path, int flags, mode_t mode = 0);
// pipe2(2) with O_CLOEXEC: {read end, write end}.
Result<std::pair<UniqueFd, UniqueFd>> pipe();
// Writes all of data to fd (retrying on EINTR and short writes).
Result<void> write_all(int fd, std::string_view data, std::string_view what);
// Reads a whole (small) file; more than `max` bytes is EFBIG (a view file named /dev/zero must
// not exhaust memory).
Result<std::string> read_file(const std::string& path, size_t max = SIZE_MAX);
// The directory of the running executable (where vu finds vu-net, vu-cowfs, its preload
// library); empty if /proc/self/exe cannot be read.
std::string exe_dir();
// A library vu preloads (libvu-pvm-accel.so, libvu-fuse-shim.so): $ENV when set (empty: none),
// else NAME next to vu, else in ../lib/vu/ (the installed layout); empty when not found.
std::string vu_library(const char* env, const char* name);
// The processes whose parent is `parent`, from /proc/PID/stat (kernels built without
// CONFIG_PROC_CHILDREN have no /proc/PID/task/TID/children). Only pids above `above` are
// read: reading every /proc/PID/stat cost ~1.8 ms here on each view's exit, and a process
// made after `above` has a larger pid unless the pid counter wrapped (the caller checks).
std::vector<pid_t> children_of(pid_t parent, pid_t above = 0);
}  // namespace sys

}  // namespace vu
