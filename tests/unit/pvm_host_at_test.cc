// pvm/host_at.h: host paths longer than PATH_MAX reach the kernel as (descriptor, rest) pairs;
// the path map's walk resolves a view path whose host path is that long.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/host_at.h"
#include "pvm/path_map.h"

namespace vu::pvm {
namespace {

class HostAtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::make("vu-host-at");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    // A mount's host directory already 1000 bytes deep, as a scratch directory or a layer root.
    host_root_ = dir_->path();
    for (char c : {'a', 'b', 'A', 'B'}) {
      host_root_ += "/" + std::string(250, c);
      ASSERT_EQ(::mkdir(host_root_.c_str(), 0755), 0);
    }
    // Below it, 14 components of 250 bytes: a view path of ~3.5 KB, a host path past PATH_MAX.
    int fd = ::open(host_root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < 14; ++i) {
      const std::string name(250, static_cast<char>('c' + i));
      rel_ += (rel_.empty() ? "" : "/") + name;
      ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
      int next = ::openat(fd, name.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      ::close(fd);
      ASSERT_GE(next, 0);
      fd = next;
    }
    deep_fd_ = fd;
    deep_ = host_root_ + "/" + rel_;
    ASSERT_GT(deep_.size(), size_t{PATH_MAX});
  }
  void TearDown() override {
    if (deep_fd_ >= 0) ::close(deep_fd_);
    // TempDir's nftw stops at PATH_MAX; rm(1) walks by descriptors.
    if (dir_) {
      EXPECT_EQ(std::system(("rm -rf '" + dir_->path() + "'").c_str()), 0);
    }
  }
  std::optional<TempDir> dir_;
  std::string host_root_, rel_, deep_;
  int deep_fd_ = -1;
};

TEST_F(HostAtTest, ALongHostPathIsCalledInChunks) {
  struct stat st;
  EXPECT_EQ(::lstat(deep_.c_str(), &st), -1);  // what the kernel says to the whole string
  EXPECT_EQ(errno, ENAMETOOLONG);
  HostAt h(deep_ + "/new");
  ASSERT_EQ(h.err, 0);
  EXPECT_TRUE(h.chunked());
  EXPECT_LT(std::string(h.rel()).size(), kShortPath);
  ASSERT_EQ(::mkdirat(h.fd(), h.rel(), 0700), 0);
  EXPECT_EQ(::fstatat(deep_fd_, "new", &st, 0), 0) << "made where the whole path names";
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(host_lstat(deep_ + "/new", &st), 0);
  ASSERT_EQ(::close(::openat(deep_fd_, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
  EXPECT_EQ(::truncate(HostAt(deep_ + "/f").path().c_str(), 12345), 0) << "the /proc/self/fd form";
  EXPECT_EQ(::fstatat(deep_fd_, "f", &st, 0), 0);
  EXPECT_EQ(st.st_size, 12345);
  // A short path goes as it is.
  HostAt s(host_root_);
  EXPECT_FALSE(s.chunked());
  EXPECT_EQ(s.fd(), AT_FDCWD);
  EXPECT_EQ(std::string(s.rel()), host_root_);
  // A missing chunk: its errno.
  EXPECT_EQ(HostAt(host_root_ + "/missing/" + rel_ + "/x").err, ENOENT);
}

TEST_F(HostAtTest, TheViewPathDecidesNotTheHosts) {
  PathMap map;
  map.add({"/v", host_root_, false, nullptr});
  const std::string view = "/v/" + rel_;
  ASSERT_LT(view.size(), size_t{PATH_MAX});
  Resolved r = map.resolve({}, view + "/new-name", false, {});
  EXPECT_EQ(r.err, 0);
  EXPECT_FALSE(r.exists);
  EXPECT_EQ(r.host, deep_ + "/new-name");
  r = map.resolve({}, view, false, {});
  EXPECT_EQ(r.err, 0);
  EXPECT_TRUE(r.exists);
  EXPECT_TRUE(S_ISDIR(r.st.st_mode));
  // A relative walk from a start that is itself past PATH_MAX on the host.
  r = map.resolve({view, deep_}, "../" + std::string(250, 'c' + 13), false, {});
  EXPECT_EQ(r.err, 0);
  EXPECT_TRUE(r.exists);
}

TEST_F(HostAtTest, ALongDirectorysPathIsFoundUpwards) {
  const std::string link = "/proc/self/fd/" + std::to_string(deep_fd_);
  char buf[8192];
  EXPECT_EQ(::readlink(link.c_str(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(long_dir_path(link), deep_);
}

}  // namespace
}  // namespace vu::pvm
