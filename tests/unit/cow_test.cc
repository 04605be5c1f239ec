// pvm/cow: the monitor's copy-on-write directories, on real directories of the test's own
// (the layer format is overlayfs's; fs_test.sh checks the same layer against the ns backend).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <atomic>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/call.h"
#include "pvm/cow.h"
#include "pvm/fs.h"
#include "tests/unit/pvm_self_call.h"
#include "pvm/path_map.h"

namespace vu::pvm {
namespace {

class CowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::make("vu-cow-test");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    root_ = dir_->path();
    low_ = root_ + "/low";
    up_ = root_ + "/layer";
    mk("low");
    mk("low/d");
    mk("low/d/sub");
    mk("low/e");
    put("low/d/f", "hello");
    put("low/e/x", "x");
    put("low/g", "keep");
    ASSERT_EQ(::chmod((low_ + "/g").c_str(), 0640), 0);
    struct timespec t[2] = {{1000000, 0}, {2000000, 5}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (low_ + "/g").c_str(), t, 0), 0);
    ASSERT_EQ(::symlink("/etc", (low_ + "/out").c_str()), 0);
    ASSERT_TRUE(Cow::prepare_layer(up_, low_).ok());
    auto c = Cow::open(up_, low_, ::getuid(), ::getgid());
    ASSERT_TRUE(c.ok());
    cow_ = std::move(c).value();
    map_.add({"/v", low_, false, cow_});
  }
  void mk(const std::string& p) { ASSERT_EQ(::mkdir((root_ + "/" + p).c_str(), 0755), 0); }
  void put(const std::string& p, const std::string& text) { std::ofstream(root_ + "/" + p) << text; }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  Resolved at(const std::string& p, bool follow = false) { return map_.resolve({}, p, follow, {}); }
  std::vector<std::string> names(const std::string& host) {
    std::vector<std::string> out;
    auto l = cow_->listing(host);
    if (!l) return {"<host>"};
    for (auto& e : *l) out.push_back(e.name);
    return out;
  }

  std::optional<TempDir> dir_;
  std::string root_, low_, up_;
  std::shared_ptr<Cow> cow_;
  PathMap map_;
};

TEST_F(CowTest, LookupSeesTheLowerUntilTheLayerHasIt) {
  Resolved r = at("/v/d/f");
  ASSERT_EQ(r.err, 0);
  EXPECT_TRUE(r.exists);
  EXPECT_EQ(r.cow, cow_.get());
  EXPECT_EQ(r.rel, "d/f");
  EXPECT_EQ(r.node.layer, 2);
  EXPECT_EQ(r.host, low_ + "/d/f");
  EXPECT_TRUE(r.moved);
  Resolved n = at("/v/d/new");
  EXPECT_FALSE(n.exists);
  EXPECT_EQ(n.host, up_ + "/d/new");  // a name to create lands in the layer
  Resolved root = at("/v");
  ASSERT_EQ(root.err, 0);
  EXPECT_EQ(root.rel, ".");
  EXPECT_EQ(root.host, up_);
  EXPECT_EQ(map_.to_view(up_ + "/d"), "/v/d");  // a cwd in the layer is the view's
  EXPECT_EQ(map_.to_view(low_ + "/d"), "/v/d");
}

TEST_F(CowTest, AWalkInTheLayersOwnDirectoriesIsTheHosts) {
  ASSERT_EQ(cow_->mkdir("new", 0755), 0);
  ASSERT_EQ(cow_->mkdir("new/sub", 0755), 0);
  // From the layer's own directory (a cwd there), through directories only the layer has: the
  // kernel's lookup is the view's.
  Resolved r = map_.resolve({"/v/new", up_ + "/new"}, "sub/file", false, {});
  EXPECT_EQ(r.err, 0);
  EXPECT_FALSE(r.exists);
  EXPECT_FALSE(r.moved);
  EXPECT_EQ(r.host, up_ + "/new/sub/file");
  // From a merged directory, or by an absolute path: the monitor answers.
  EXPECT_TRUE(map_.resolve({"/v", up_}, "new/sub/file", false, {}).moved);
  EXPECT_TRUE(map_.resolve({"/v/d", low_ + "/d"}, "f", false, {}).moved);
  EXPECT_TRUE(at("/v/new/sub/file").moved);
  EXPECT_TRUE(map_.resolve({"/v/new", up_ + "/new"}, "../new/sub/file", false, {}).moved);
}

TEST_F(CowTest, WriteCopiesUpKeepingModeTimesAndXattrs) {
  const bool xattrs = ::setxattr((low_ + "/g").c_str(), "user.vu", "one", 3, 0) == 0;
  struct stat before;
  ASSERT_EQ(::stat((low_ + "/g").c_str(), &before), 0);
  Resolved r0 = at("/v/g");
  struct stat shown0 = r0.st;
  cow_->present(r0.rel, r0.node, &shown0);
  // A copy-up that changes no data keeps the times (a write below changes mtime).
  ASSERT_EQ(cow_->chmod("g", 0640), 0);
  struct stat copied;
  ASSERT_EQ(::stat((up_ + "/g").c_str(), &copied), 0);
  EXPECT_EQ(copied.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(copied.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  int fd = cow_->open("g", O_WRONLY | O_APPEND, 0);
  ASSERT_GE(fd, 0) << -fd;
  ASSERT_EQ(::write(fd, "+", 1), 1);
  ::close(fd);
  EXPECT_EQ(slurp(low_ + "/g"), "keep");  // the lower file is untouched
  EXPECT_EQ(slurp(up_ + "/g"), "keep+");
  struct stat st;
  ASSERT_EQ(::stat((up_ + "/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  if (xattrs) {
    char v[8] = {};
    EXPECT_EQ(::getxattr((up_ + "/g").c_str(), "user.vu", v, sizeof v), 3);
    EXPECT_STREQ(v, "one");
    // The origin is the layer's own: hidden from the view's listing.
    char list[256];
    ssize_t n = cow_->listxattr("g", at("/v/g").node, list, sizeof list);
    EXPECT_EQ(std::string(list, static_cast<size_t>(std::max<ssize_t>(n, 0))), std::string("user.vu\0", 8));
    // st_ino as stat showed it before the copy-up (overlayfs with xino).
    Resolved r = at("/v/g");
    EXPECT_EQ(r.node.layer, 1);
    struct stat shown = r.st;
    cow_->present(r.rel, r.node, &shown);
    EXPECT_EQ(shown.st_ino, shown0.st_ino);
    EXPECT_EQ(shown.st_dev, shown0.st_dev);
  }
  // The parents were copied up first, as directories.
  ASSERT_EQ(cow_->open("d/f", O_RDWR | O_TRUNC, 0) >= 0, true);
  ASSERT_EQ(::stat((up_ + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(CowTest, RemoveLeavesWhiteoutsAndMkdirOverOneIsOpaque) {
  EXPECT_EQ(cow_->remove("g", false), 0);
  struct stat st;
  ASSERT_EQ(::lstat((up_ + "/g").c_str(), &st), 0);
  EXPECT_TRUE(is_whiteout(st));
  EXPECT_FALSE(at("/v/g").exists);
  EXPECT_EQ(cow_->remove("e", true), ENOTEMPTY);
  EXPECT_EQ(cow_->remove("e/x", false), 0);
  EXPECT_EQ(cow_->remove("e", true), 0);
  EXPECT_FALSE(at("/v/e").exists);
  EXPECT_EQ(cow_->mkdir("e", 0755), 0);
  char v[4] = {};
  ASSERT_EQ(::getxattr((up_ + "/e").c_str(), "user.overlay.opaque", v, sizeof v), 1) << errno;
  EXPECT_EQ(v[0], 'y');
  // The opaque directory hides the lower one's entries (x was not deleted from the lower).
  EXPECT_TRUE(::access((low_ + "/e/x").c_str(), F_OK) == 0);
  EXPECT_FALSE(at("/v/e/x").exists);
  // A new file where a whiteout was: a plain file of the layer.
  int fd = cow_->open("g", O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(::lstat((up_ + "/g").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(cow_->mknod("wo", S_IFCHR | 0600, makedev(0, 0)), EPERM);  // the view cannot fake a whiteout
}

TEST_F(CowTest, ListingIsTheUnionWithoutDuplicatesOrWhiteouts) {
  EXPECT_EQ(names(low_ + "/d"), std::vector<std::string>{"<host>"});  // the lower's own: natively
  EXPECT_EQ(cow_->remove("d/f", false), 0);
  int fd = cow_->open("d/n", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(names(up_ + "/d"), (std::vector<std::string>{".", "..", "n", "sub"}));
  EXPECT_EQ(cow_->mkdir("new", 0755), 0);
  EXPECT_EQ(names(up_ + "/new"), std::vector<std::string>{"<host>"});  // the layer's own
  EXPECT_EQ(names(up_), (std::vector<std::string>{".", "..", "d", "e", "g", "new", "out"}));
}

TEST_F(CowTest, RenameAndLinks) {
  EXPECT_EQ(cow_->rename("d", "d2", 0), EXDEV);  // a lower directory: mv copies it
  EXPECT_EQ(cow_->rename("d/f", "d/f2", 0), 0);
  struct stat st;
  ASSERT_EQ(::lstat((up_ + "/d/f").c_str(), &st), 0);
  EXPECT_TRUE(is_whiteout(st));
  EXPECT_EQ(slurp(up_ + "/d/f2"), "hello");
  EXPECT_EQ(cow_->mkdir("nd", 0755), 0);
  EXPECT_EQ(cow_->rename("nd", "nd2", 0), 0);  // the layer's own directory moves
  EXPECT_EQ(cow_->link("g", "g2"), 0);
  struct stat a, b;
  ASSERT_EQ(::stat((up_ + "/g").c_str(), &a), 0);
  ASSERT_EQ(::stat((up_ + "/g2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(cow_->rename("g", "g2", RENAME_EXCHANGE), EINVAL);
  EXPECT_EQ(cow_->rename("g", "g2", 0), 0);  // two names of one file: nothing happens
  EXPECT_EQ(::lstat((up_ + "/g").c_str(), &a), 0);
  EXPECT_TRUE(S_ISREG(a.st_mode));
}

TEST_F(CowTest, NoSymlinkLeadsOutOfTheLayers) {
  // A symlink of the lower tree is copied as a symlink, never followed.
  EXPECT_EQ(cow_->chown("out", static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  struct stat st;
  ASSERT_EQ(::lstat((up_ + "/out").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // A path through it is not the cow's to open (the view's walk expands symlinks first).
  EXPECT_EQ(cow_->open("out/passwd", O_RDONLY, 0), -ENOTDIR);
  // A symlink planted in the layer where a copy-up will write is not followed.
  std::string victim = root_ + "/victim";
  put("victim", "secret");
  ASSERT_EQ(::symlink(victim.c_str(), (up_ + "/e").c_str()), 0);  // e is now the layer's symlink
  EXPECT_LT(cow_->open("e/x", O_WRONLY, 0), 0);
  EXPECT_EQ(slurp(victim), "secret");
}

TEST_F(CowTest, ConcurrentCopyUpsMakeOneWholeCopy) {
  std::string big(3 << 20, 'a');
  put("low/big", big);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      int fd = cow_->open("big", O_RDWR, 0);
      if (fd >= 0) {
        struct stat st;
        if (::fstat(fd, &st) == 0 && st.st_size == static_cast<off_t>(big.size())) ++ok;
        ::close(fd);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(slurp(up_ + "/big"), big);
  // Nothing left beside it.
  EXPECT_EQ(names(up_), (std::vector<std::string>{".", "..", "big", "d", "e", "g", "out"}));
}

// The monitor's handlers on calls of the test process itself, through a view with the cow.
using testing::addr;
using testing::self_call;

TEST_F(CowTest, HandlersAnswerTheMergedView) {
  Config cfg;
  cfg.map = map_;
  cfg.uid = ::getuid();
  cfg.gid = ::getgid();
  const char* g = "/v/g";
  struct stat st;
  Call s = self_call(SYS_stat, {addr(g), addr(&st)});
  ASSERT_EQ(do_stat(cfg, s, AT_FDCWD, s.a[0], s.a[1], 0).err, 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  const ino_t ino = st.st_ino;
  Call ch = self_call(SYS_chmod, {addr(g), 0600});
  EXPECT_EQ(do_chmod(cfg, ch, AT_FDCWD, ch.a[0], 0600, 0).err, 0);
  struct stat low;
  ASSERT_EQ(::stat((low_ + "/g").c_str(), &low), 0);
  EXPECT_EQ(low.st_mode & 07777, 0640u);  // the lower file keeps its mode
  ASSERT_EQ(do_stat(cfg, s, AT_FDCWD, s.a[0], s.a[1], 0).err, 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  char v[64];
  if (::getxattr((up_ + "/g").c_str(), "user.overlay.vu.origin", v, sizeof v) > 0) {
    EXPECT_EQ(st.st_ino, ino);
  }
  const char* dir = "/v/d";
  Call rm = self_call(SYS_rmdir, {addr(dir)});
  EXPECT_EQ(do_remove(cfg, rm, AT_FDCWD, rm.a[0], true).err, ENOTEMPTY);
  const char* f = "/v/d/f";
  Call un = self_call(SYS_unlink, {addr(f)});
  EXPECT_EQ(do_remove(cfg, un, AT_FDCWD, un.a[0], false).err, 0);
  Call s2 = self_call(SYS_stat, {addr(f), addr(&st)});
  EXPECT_EQ(do_stat(cfg, s2, AT_FDCWD, s2.a[0], s2.a[1], 0).err, ENOENT);
  EXPECT_TRUE(::access((low_ + "/d/f").c_str(), F_OK) == 0);
}

}  // namespace
}  // namespace vu::pvm
