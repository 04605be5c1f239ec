// base/temp_dir.h — a temporary directory removed (recursively) when its owner goes away.
//
//   auto dir = VU_TRY(vu::TempDir::make("vu-probe"));   // $TMPDIR or /tmp, mode 0700
//   … dir.path() …                                      // gone at scope exit, on every path
#pragma once

#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace vu {

// Removes a directory tree (unreadable directories are opened up first: overlayfs leaves its
// work/work at mode 000). Path-based: only for a tree no one else can write into. Never crosses
// into another filesystem (a FUSE mount a killed vu left there is not emptied through).
void remove_tree(const std::string& path);

class TempDir {
 public:
  static Result<TempDir> make(const char* prefix);
  // In `parent` instead of $TMPDIR (e.g. beside a directory it must share a filesystem with).
  static Result<TempDir> make_in(const std::string& parent, const char* prefix);
  // PARENT/PREFIX.PID.XXXXXX, after removing the PREFIX.PID.* directories of this user whose
  // process PID is gone (a vu killed with SIGKILL could not remove its own). Only directories
  // owned by the caller, not symlinks, and never one whose process still runs (even if the pid
  // was reused: that one is left for a later run) nor one still locked: the directory is
  // flock'ed while its TempDir lives, so a vu in another pid namespace keeps its own.
  static Result<TempDir> make_owned(const std::string& parent, const char* prefix);
  // The same in $TMPDIR or /tmp.
  static Result<TempDir> make_owned(const char* prefix);
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)), lock_(std::move(o.lock_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  UniqueFd lock_;  // make_owned: a flock on the directory while it is in use
};

}  // namespace vu
