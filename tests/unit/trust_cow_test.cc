// pvm/cow against someone else who can change the lower tree (or the view racing itself): what
// the last security review left open. Each test fails on the code before its fix (the race
// tests with a high probability per run: the swap loops are bounded in count and time).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/cow.h"

namespace vu::pvm {
namespace {

class TrustCowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::make("vu-trust-cow");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    root_ = dir_->path();
    low_ = root_ + "/low";
    up_ = root_ + "/layer";
    ASSERT_EQ(::mkdir(low_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((low_ + "/d").c_str(), 0755), 0);
    put(low_ + "/d/f", "f");
    ASSERT_EQ(::mkdir((root_ + "/outside").c_str(), 0755), 0);
    put(root_ + "/outside/secret", "secret");
    ASSERT_EQ(::symlink("SECRET-TARGET", (root_ + "/outside/link").c_str()), 0);
    ASSERT_TRUE(Cow::prepare_layer(up_, low_).ok());
    auto c = Cow::open(up_, low_, ::getuid(), ::getgid());
    ASSERT_TRUE(c.ok());
    cow_ = std::move(c).value();
  }
  static void put(const std::string& p, const std::string& text) { std::ofstream(p) << text; }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::optional<TempDir> dir_;
  std::string root_, low_, up_;
  std::shared_ptr<Cow> cow_;
};

// Someone who can write the lower tree swaps a FIFO and a regular file under one name while the
// view opens it for writing: the regular file must be copied up, never opened in the lower tree.
TEST_F(TrustCowTest, ASwapInTheLowerTreeNeverLetsAnOpenWriteIt) {
  ASSERT_EQ(::mkfifo((low_ + "/p").c_str(), 0644), 0);
  put(low_ + "/p.alt", "lower");
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    int dfd = ::open(low_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < 2000000 && !stop; ++i) ::syscall(SYS_renameat2, dfd, "p", dfd, "p.alt", RENAME_EXCHANGE);
    ::close(dfd);
  });
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int opened = 0;
  for (int i = 0; i < 20000 && std::chrono::steady_clock::now() < end; ++i) {
    // A FIFO without a reader: ENXIO (O_NONBLOCK); a regular file: the layer's copy.
    int fd = cow_->open("p", O_WRONLY | O_NONBLOCK, 0);
    if (fd >= 0) {
      ++opened;
      EXPECT_EQ(::write(fd, "X", 1), 1);
      ::close(fd);
    }
    ::unlink((up_ + "/p").c_str());  // the next open meets the lower one again
  }
  stop = true;
  swapper.join();
  for (const char* n : {"/p", "/p.alt"}) {
    struct stat st;
    ASSERT_EQ(::lstat((low_ + n).c_str(), &st), 0);
    if (S_ISREG(st.st_mode)) {
      EXPECT_EQ(slurp(low_ + n), "lower") << "a write of the view reached the lower tree";
    }
  }
  std::printf("opened for writing %d times (copies up)\n", opened);
}

// A lookup below a directory the view's walk went through: if that directory became a symlink
// meanwhile, the cow does not follow it out of the layer (ELOOP), for stat, readlink or copy-up.
TEST_F(TrustCowTest, ALookupFollowsNoSymlinkPutOnTheWay) {
  // What the view's walk saw: d, a directory of the lower layer. Then someone swaps it.
  ASSERT_EQ(::rename((low_ + "/d").c_str(), (root_ + "/d.old").c_str()), 0);
  ASSERT_EQ(::symlink((root_ + "/outside").c_str(), (low_ + "/d").c_str()), 0);
  CowNode n;
  struct stat st;
  Cow::Dir lower_only;
  lower_only.upper = false;
  EXPECT_NE(cow_->child("d", lower_only, "secret", &n, &st), 0) << "stat through a symlink of the lower tree";
  EXPECT_NE(cow_->child("d", Cow::Dir{}, "secret", &n, &st), 0);
  char buf[64];
  EXPECT_LT(cow_->read_link("d/link", 2, buf, sizeof buf), 0) << "readlink through a symlink of the lower tree";
  // A walk that holds d's descriptor (Cow::Dir, taken before the swap) stays in the directory it
  // opened: never the symlink's target.
  ASSERT_EQ(::unlink((low_ + "/d").c_str()), 0);
  ASSERT_EQ(::rename((root_ + "/d.old").c_str(), (low_ + "/d").c_str()), 0);
  Cow::Dir held;
  ASSERT_EQ(cow_->child(".", lower_only, "d", &n, &st, &held), 0);
  ASSERT_TRUE(held.lower && held.lower_fd) << "the walk opened the lower directory";
  ASSERT_EQ(::rename((low_ + "/d").c_str(), (root_ + "/d.old").c_str()), 0);
  ASSERT_EQ(::symlink((root_ + "/outside").c_str(), (low_ + "/d").c_str()), 0);
  EXPECT_EQ(cow_->child("d", held, "secret", &n, &st), ENOENT) << "stat through a symlink of the lower tree";
  EXPECT_NE(cow_->child("d", Cow::Dir{}, "secret", &n, &st), 0);
  // A plain walk still works.
  ASSERT_EQ(::unlink((low_ + "/d").c_str()), 0);
  ASSERT_EQ(::rename((root_ + "/d.old").c_str(), (low_ + "/d").c_str()), 0);
  EXPECT_EQ(cow_->lookup("d/f", &n, &st), 0);
  EXPECT_EQ(n.layer, 2);
}

// A layer directory that is not the caller's (or that others may write) is refused by what is
// opened, not only by its path (fusefs::choose_cow checked the path before; a swap meanwhile).
TEST_F(TrustCowTest, ALayerNotTheCallersIsRefused) {
  const std::string other = root_ + "/other";
  ASSERT_EQ(::mkdir(other.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(other.c_str(), 0777), 0);
  auto p = Cow::prepare_layer(other, low_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().kind(), ErrorKind::kSetup);
  EXPECT_NE(p.error().message().find("written by group or others"), std::string::npos) << p.error().message();
  EXPECT_FALSE(Cow::open(other, low_, ::getuid(), ::getgid()).ok());
  ASSERT_EQ(::chmod(other.c_str(), 01777), 0);  // sticky: accepted, as choose_cow (a /tmp layer)
  EXPECT_TRUE(Cow::prepare_layer(other, low_).ok());
  ASSERT_EQ(::chmod(other.c_str(), 0700), 0);
  if (::geteuid() == 0) {  // only root can give a directory away
    ASSERT_EQ(::chown(other.c_str(), 4242, 4242), 0);
    auto q = Cow::prepare_layer(other, low_);
    ASSERT_FALSE(q.ok());
    EXPECT_NE(q.error().message().find("is not yours (owner uid 4242)"), std::string::npos) << q.error().message();
    EXPECT_FALSE(Cow::open(other, low_, 0, 0).ok());
  }
  // A symlink to the caller's own directory is not a layer either.
  ASSERT_EQ(::symlink(up_.c_str(), (root_ + "/via").c_str()), 0);
  EXPECT_FALSE(Cow::prepare_layer(root_ + "/via", low_).ok());
}

// rmdir of the layer's own directory that holds only whiteouts, while a process of the view
// makes a file in it (a call the kernel runs: the directory is the layer's alone): the file is
// the process's to keep, the rmdir fails ENOTEMPTY.
TEST_F(TrustCowTest, RemoveKeepsANameMadeMeanwhile) {
  const std::string n = up_ + "/n";
  int kept = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (int i = 0; i < 3000 && std::chrono::steady_clock::now() < end; ++i) {
    ASSERT_EQ(::mkdir(n.c_str(), 0755), 0);
    ASSERT_EQ(::mknod((n + "/w").c_str(), S_IFCHR | 0600, makedev(0, 0)), 0) << "the test needs a whiteout";
    std::atomic<bool> go{false}, made{false};
    std::thread t([&] {
      while (!go) {
      }
      for (int k = 0; k < 50 && !made; ++k) {
        int fd = ::open((n + "/new").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) made = true, ::close(fd);
      }
    });
    go = true;
    int e = cow_->remove("n", true);
    t.join();
    if (made) {
      ++kept;
      ASSERT_EQ(::access((n + "/new").c_str(), F_OK), 0) << "a file the view made was removed (try " << i << ")";
      EXPECT_EQ(e, ENOTEMPTY);
    } else {
      EXPECT_EQ(e, 0);
    }
    ::unlink((n + "/new").c_str());
    ::unlink((n + "/w").c_str());
    ::rmdir(n.c_str());
  }
  std::printf("files made meanwhile: %d\n", kept);
}

}  // namespace
}  // namespace vu::pvm
