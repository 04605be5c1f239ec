#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/child.h"
#include "base/error.h"
#include "base/raw_log.h"
#include "base/strings.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace vu {
namespace {

Result<int> half(int v) {
  if (v % 2) return Error::usage("odd: " + std::to_string(v));
  return v / 2;
}
Result<int> quarter(int v) {
  int h = VU_TRY(half(v));
  return VU_TRY(half(h));
}

TEST(Error, SysCarriesOperationObjectAndErrno) {
  Error e = Error::sys("mount", ENOENT, "/mnt");
  EXPECT_EQ(e.message(), "mount /mnt: No such file or directory");
  EXPECT_EQ(e.err(), ENOENT);
  EXPECT_EQ(e.kind(), ErrorKind::kSetup);
}

TEST(Error, ContextAndHintCompose) {
  Error e = Error::sys("open", EACCES, "/dev/fuse").context("probe").hint("chmod 0666 /dev/fuse");
  EXPECT_EQ(e.to_string(), "probe: open /dev/fuse: Permission denied\n  hint: chmod 0666 /dev/fuse");
}

TEST(Result, TryPropagatesFirstError) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "odd: 3");
  EXPECT_EQ(r.error().kind(), ErrorKind::kUsage);
}

TEST(ErrnoName, KnownAndUnknown) {
  EXPECT_STREQ(errno_name(EPERM), "EPERM");
  EXPECT_STREQ(errno_name(ENOSPC), "ENOSPC");
  EXPECT_STREQ(errno_name(99999), "E?");
}

TEST(UniqueFd, ClosesOnDestructionAndReleases) {
  auto p = sys::pipe();
  ASSERT_TRUE(p.ok());
  int raw = p->first.get();
  { UniqueFd moved = std::move(p->first); }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
  int w = p->second.release();
  EXPECT_FALSE(p->second.valid());
  EXPECT_EQ(::close(w), 0);
}

TEST(ReadFile, MissingFileNamesPath) {
  auto r = sys::read_file("/nonexistent/vu-test");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/vu-test"), std::string::npos);
}

TEST(Strings, SplitTrimJoinQuote) {
  EXPECT_EQ(str::split("a:b::c", ':'), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(str::trim("  x y \n"), "x y");
  EXPECT_EQ(str::join({"a", "b"}, ", "), "a, b");
  EXPECT_EQ(str::quote("a\nb"), "'a\\x0ab'");
}

TEST(Strings, ParseUintRejectsJunkAndOverflow) {
  unsigned long v;
  EXPECT_TRUE(str::parse_uint("100000", 0xffffffffUL, &v));
  EXPECT_EQ(v, 100000u);
  EXPECT_FALSE(str::parse_uint("", 10, &v));
  EXPECT_FALSE(str::parse_uint("12a", 100, &v));
  EXPECT_FALSE(str::parse_uint("4294967296", 0xffffffffUL, &v));
}

TEST(RawLog, FormatInt) {
  char buf[12];
  EXPECT_STREQ(raw::format_int(0, buf), "0");
  EXPECT_STREQ(raw::format_int(-125, buf), "-125");
  EXPECT_STREQ(raw::format_int(2147483647, buf), "2147483647");
}

TEST(Child, ExitCodeAndSignalAreReported) {
  auto c = Child::clone(0);
  ASSERT_TRUE(c.ok());
  if (c->is_child()) ::_exit(7);
  auto st = c->wait();
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->shell_status(), 7);

  auto k = Child::clone(0);
  ASSERT_TRUE(k.ok());
  if (k->is_child()) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_TRUE(k->signal(SIGTERM).ok());
  auto ks = k->wait();
  ASSERT_TRUE(ks.ok());
  EXPECT_TRUE(ks->signaled);
  EXPECT_EQ(ks->shell_status(), 128 + SIGTERM);
}

TEST(Child, DestructorKillsAndReapsAnUnwaitedChild) {
  pid_t pid;
  {
    auto c = Child::clone(0);
    ASSERT_TRUE(c.ok());
    if (c->is_child()) {
      ::pause();
      ::_exit(0);
    }
    pid = c->pid();
  }
  EXPECT_EQ(::kill(pid, 0), -1);  // gone and reaped
  EXPECT_EQ(errno, ESRCH);
}

TEST(TempDir, RemovedRecursively) {
  std::string path;
  {
    auto d = TempDir::make("vu-test");
    ASSERT_TRUE(d.ok());
    path = d->path();
    ASSERT_EQ(::mkdir((path + "/sub").c_str(), 0700), 0);
    ASSERT_TRUE(sys::write_all(UniqueFd(::creat((path + "/sub/f").c_str(), 0600)).get(), "x", "f"));
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

// make_owned's sweep removes PREFIX.PID.* directories of dead pids, but a pid means nothing in
// another pid namespace (a vu in a container, in `unshare -p`, sharing /dev/shm or $TMPDIR):
// there a live vu's pid is "gone" here. A live vu holds a lock on its directory; the sweep
// spares a locked one whatever its pid says.
TEST(TempDir, SweepSparesALockedDirectoryWhosePidIsGoneHere) {
  auto parent = TempDir::make("vu-test-sweep");
  ASSERT_TRUE(parent.ok());
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string lead = parent->path() + "/vu-t." + std::to_string(dead);
  ASSERT_EQ(::mkdir((lead + ".live").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((lead + ".live/sub").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((lead + ".stale").c_str(), 0700), 0);
  UniqueFd held(::open((lead + ".live").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(held);
  ASSERT_EQ(::flock(held.get(), LOCK_EX), 0);
  {
    auto mine = TempDir::make_owned(parent->path(), "vu-t");
    ASSERT_TRUE(mine.ok());
    EXPECT_EQ(::access((lead + ".live/sub").c_str(), F_OK), 0) << "a locked (live) directory was removed";
    EXPECT_NE(::access((lead + ".stale").c_str(), F_OK), 0) << "an unlocked one of a dead pid was kept";
    // Its own directory is locked while it lives: another sweep, from any pid namespace, spares it.
    UniqueFd probe(::open(mine->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(probe);
    EXPECT_NE(::flock(probe.get(), LOCK_EX | LOCK_NB), 0);
  }
}

}  // namespace
}  // namespace vu
