#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/monitor.h"
#include "pvm/path_map.h"
#include "runtime/plan.h"
#include "runtime/pvm_backend.h"

namespace vu::pvm {
namespace {

TEST(PathMapText, NormalizeAndWithin) {
  EXPECT_EQ(normalize("/a/./b//c/"), "/a/b/c");
  EXPECT_EQ(normalize("/"), "/");
  EXPECT_TRUE(is_within("/mnt/x", "/mnt"));
  EXPECT_TRUE(is_within("/mnt", "/mnt"));
  EXPECT_FALSE(is_within("/mntx", "/mnt"));
  EXPECT_TRUE(is_within("/anything", "/"));
}

TEST(PathMapText, HostAndViewPaths) {
  PathMap m;
  m.add({"/mnt", "/srv/data", false});
  m.add({"/mnt/sub", "/other", true});
  EXPECT_EQ(m.to_host("/mnt/a/b"), "/srv/data/a/b");
  EXPECT_EQ(m.to_host("/mnt/sub/c"), "/other/c");
  EXPECT_EQ(m.to_host("/etc"), "/etc");
  EXPECT_EQ(m.to_view("/srv/data/a"), "/mnt/a");
  EXPECT_EQ(m.to_view("/other"), "/mnt/sub");
  EXPECT_EQ(m.to_view("/etc/passwd"), "/etc/passwd");
  EXPECT_EQ(m.to_view("/mnt/hidden"), "");  // the host's /mnt is covered in the view
  ASSERT_NE(m.covering("/mnt/sub/x"), nullptr);
  EXPECT_TRUE(m.covering("/mnt/sub/x")->read_only);
  EXPECT_FALSE(m.covering("/mnt/x")->read_only);
  EXPECT_TRUE(m.has_mounts_below("/mnt"));
  EXPECT_FALSE(m.has_mounts_below("/mnt/sub"));
}

TEST(PathMapText, EnclosingMountHidesEarlierOnes) {
  PathMap m;
  m.add({"/mnt/sub", "/other", false});
  m.add({"/mnt", "/srv/data", false});
  EXPECT_EQ(m.mounts().size(), 1u);
  EXPECT_EQ(m.to_host("/mnt/sub"), "/srv/data/sub");
}

class PathMapFs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::make("vu-pvm-test");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    root_ = dir_->path();
    mk("data");
    mk("data/sub");
    put("data/f", "hello");
    ASSERT_EQ(::symlink("../f", (root_ + "/data/sub/up").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (root_ + "/data/abs").c_str()), 0);
    ASSERT_EQ(::symlink("loop", (root_ + "/data/loop").c_str()), 0);
    map_.add({"/view", root_ + "/data", false});
  }
  void mk(const std::string& p) { ASSERT_EQ(::mkdir((root_ + "/" + p).c_str(), 0755), 0); }
  void put(const std::string& p, const std::string& text) { std::ofstream(root_ + "/" + p) << text; }
  Resolved abs(const std::string& p, bool follow = true) { return map_.resolve({}, p, follow, {}); }

  std::optional<TempDir> dir_;
  std::string root_;
  PathMap map_;
};

TEST_F(PathMapFs, StepsOntoAMountpoint) {
  Resolved r = abs("/view/f");
  ASSERT_EQ(r.err, 0);
  EXPECT_TRUE(r.exists);
  EXPECT_EQ(r.host, root_ + "/data/f");
  EXPECT_EQ(r.view, "/view/f");
  EXPECT_TRUE(r.moved);
  EXPECT_FALSE(r.mountpoint);
  Resolved mp = abs("/view");
  EXPECT_TRUE(mp.mountpoint);
  EXPECT_TRUE(S_ISDIR(mp.st.st_mode));
}

TEST_F(PathMapFs, HostPathsOutsideMountsAreNotMoved) {
  Resolved r = abs("/etc/passwd");
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.host, "/etc/passwd");
  EXPECT_FALSE(r.moved);
  EXPECT_EQ(r.mount, nullptr);
}

TEST_F(PathMapFs, DotDotAtABindRootLeadsToTheMountpointsParent) {
  Resolved r = abs("/view/../etc/passwd");
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.host, "/etc/passwd");
  EXPECT_TRUE(r.moved);
  // From a start inside the bind, as a cwd would be.
  Resolved s = map_.resolve({"/view/sub", root_ + "/data/sub"}, "../../etc/passwd", true, {});
  EXPECT_EQ(s.host, "/etc/passwd");
  EXPECT_TRUE(s.moved);
  Resolved t = map_.resolve({"/view/sub", root_ + "/data/sub"}, "../f", true, {});
  EXPECT_EQ(t.host, root_ + "/data/f");
  EXPECT_FALSE(t.moved);  // the host's own lookup from that cwd gives the same file
}

TEST_F(PathMapFs, SymlinksResolvedInTheView) {
  Resolved up = abs("/view/sub/up");
  EXPECT_EQ(up.host, root_ + "/data/f");
  EXPECT_EQ(up.view, "/view/f");
  Resolved out = abs("/view/abs/passwd");
  EXPECT_EQ(out.host, "/etc/passwd");
  EXPECT_EQ(out.view, "/etc/passwd");
  Resolved nofollow = abs("/view/sub/up", false);
  EXPECT_TRUE(S_ISLNK(nofollow.st.st_mode));
  EXPECT_EQ(abs("/view/loop").err, ELOOP);
}

TEST_F(PathMapFs, ErrorsAsTheKernelGivesThem) {
  EXPECT_EQ(abs("/view/f/x").err, ENOTDIR);
  EXPECT_EQ(abs("/view/f/").err, ENOTDIR);
  EXPECT_EQ(abs("/view/nope/x").err, ENOENT);
  Resolved create = abs("/view/new");
  EXPECT_EQ(create.err, 0);
  EXPECT_FALSE(create.exists);
  EXPECT_EQ(create.host, root_ + "/data/new");
  EXPECT_EQ(abs("").err, ENOENT);
}

TEST_F(PathMapFs, ProcSelfNamesTheCaller) {
  Caller me{::getpid(), ::gettid()};
  Resolved r = map_.resolve({}, "/proc/self/cwd", false, me);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.host, "/proc/" + std::to_string(::getpid()) + "/cwd");
  Resolved t = map_.resolve({}, "/proc/thread-self/comm", false, me);
  EXPECT_EQ(t.host, "/proc/" + std::to_string(::getpid()) + "/task/" + std::to_string(::gettid()) + "/comm");
}

TEST_F(PathMapFs, MagicLinksFollowTheObject) {
  int fd = ::open((root_ + "/data/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Caller me{::getpid(), ::gettid()};
  Resolved r = map_.resolve({}, "/proc/self/fd/" + std::to_string(fd), true, me);
  ::close(fd);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.host, root_ + "/data/f");
  EXPECT_EQ(r.view, "/view/f");  // so a read-only bind covers reopens too
}

// A new name with a trailing slash keeps it in the host path, so the host call answers as the
// kernel does for the view's path (mkdir makes it; mknod, symlink, link: ENOENT; open O_CREAT:
// EISDIR; rename of a file onto it: ENOTDIR).
TEST_F(PathMapFs, TrailingSlashOnANewNameReachesTheHost) {
  Resolved r = abs("/view/new/", false);
  ASSERT_EQ(r.err, 0);
  EXPECT_FALSE(r.exists);
  EXPECT_TRUE(r.trailing_slash);
  EXPECT_EQ(r.host, root_ + "/data/new/");
  EXPECT_EQ(r.view, "/view/new");
  Resolved plain = abs("/view/new", false);
  EXPECT_FALSE(plain.trailing_slash);
  EXPECT_EQ(plain.host, root_ + "/data/new");
  EXPECT_EQ(abs("/view/f/").err, ENOTDIR);  // an existing file: as before
  EXPECT_EQ(::mknod(r.host.c_str(), S_IFIFO | 0600, 0), -1);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace vu::pvm

namespace vu {
namespace {

TEST(PvmPlan, DeniedUsernsUnderAutoPlansPvm) {
  ViewSpec s;
  ASSERT_TRUE(finalize(s).ok());  // the default slirp network
  Fact denied{"user namespaces", false, "unshare(CLONE_NEWUSER): EPERM"};
  auto p = make_plan(s, &denied);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->backend, Backend::kPvm);
  EXPECT_NE(to_string(*p).find("pvm: host sockets"), std::string::npos);  // the view's own network
}

TEST(PvmPlan, RefusesWhatOnlyNamespacesGive) {
  ViewSpec s;
  s.backend = BackendWish::kPvm;
  ASSERT_TRUE(vdens::add_net(s.net, "vde:///tmp/vu-unit-no-switch").ok());
  ASSERT_TRUE(vdens::add_net(s.net, "vde:///tmp/vu-unit-no-switch2").ok());
  ASSERT_TRUE(finalize(s).ok());
  auto p = make_plan(s, nullptr);  // two VDE networks: stack mode (runtime/pvm_stack_net.h)
  ASSERT_TRUE(p.ok());
  EXPECT_NE(to_string(*p).find("pvm stack mode, for 2 networks"), std::string::npos);
  EXPECT_NE(to_string(*p).find("vde1 <- VDE vde:///tmp/vu-unit-no-switch2"), std::string::npos);
  ViewSpec v;  // vdens's unconfigured interfaces on several networks: not in stack mode
  v.backend = BackendWish::kPvm;
  ASSERT_TRUE(vdens::add_net(v.net, "vde:///tmp/vu-unit-no-switch").ok());
  ASSERT_TRUE(vdens::add_net(v.net, "vde:///tmp/vu-unit-no-switch2").ok());
  v.net.configure_links = false;
  ASSERT_TRUE(finalize(v).ok());
  auto q = make_plan(v, nullptr);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().kind(), ErrorKind::kDenied);
  ViewSpec c;
  c.backend = BackendWish::kPvm;
  c.ambient_caps = 1;
  EXPECT_FALSE(make_plan(c, nullptr).ok());
}

TEST(PvmConfig, TmpfsAndMissingAncestorsBecomeDirectories) {
  ViewSpec s;
  auto t = bindmount::parse_tmpfs("/vu-unit-missing/a/scratch:mode=0700");
  ASSERT_TRUE(t.ok());
  s.mounts.push_back(*t);
  std::optional<TempDir> scratch;
  auto cfg = make_pvm_config(s, &scratch);
  ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
  ASSERT_TRUE(scratch.has_value());
  pvm::Resolved r = cfg->map.resolve({}, "/vu-unit-missing/a/scratch", true, {});
  ASSERT_EQ(r.err, 0);
  EXPECT_TRUE(S_ISDIR(r.st.st_mode));
  EXPECT_EQ(r.st.st_mode & 07777, 0700u);
  pvm::Resolved a = cfg->map.resolve({}, "/vu-unit-missing/a", true, {});
  EXPECT_TRUE(a.read_only());
  EXPECT_EQ(::access((a.host + "/scratch").c_str(), F_OK), 0);  // listed in its parent
}

TEST(PvmFilter, KillableWaitOnThisKernel) {
  // Linux >= 5.19 has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV; the probe must agree with uname.
  utsname u;
  ASSERT_EQ(::uname(&u), 0);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  EXPECT_EQ(pvm::killable_wait_supported(), major > 5 || (major == 5 && minor >= 19));
}

TEST(PvmFilter, BuildsWithMountsAndOPathRules) {
  pvm::Config cfg;
  cfg.map.add({"/mnt", "/tmp", false});
  auto f = pvm::Filter::build(cfg);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_GT(f->size(), 60u);
}

TEST(PvmFilter, Builds) {
  pvm::Config cfg;
  auto f = pvm::Filter::build(cfg);
  ASSERT_TRUE(f.ok());
  EXPECT_GT(f->size(), 10u);
  cfg.root = true;
  auto g = pvm::Filter::build(cfg);
  ASSERT_TRUE(g.ok());
  EXPECT_GT(g->size(), f->size());
}

}  // namespace
}  // namespace vu

// The modules, each serving a call made by this very process (its memory is the "caller's").
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "pvm/call.h"
#include "pvm/fs.h"
#include "tests/unit/pvm_self_call.h"
#include "pvm/identity.h"
#include "pvm/net.h"
#include "pvm/uts.h"

namespace vu::pvm {
namespace {

using testing::addr;
using testing::self_call;

TEST(PvmIdentity, RootIdsAreZeroAndOnlyZeroCanBeSet) {
  uint32_t r = 7, e = 7, s = 7;
  Config cfg;
  cfg.root = true;
  Call c = self_call(SYS_getresuid, {addr(&r), addr(&e), addr(&s)});
  Answer a = do_root_ids(cfg, c);
  EXPECT_EQ(a.err, 0);
  EXPECT_EQ(r + e + s, 0u);
  Call set = self_call(SYS_setuid, {1000});
  EXPECT_EQ(do_root_ids(cfg, set).err, EINVAL);
  Call keep = self_call(SYS_setresuid, {0, static_cast<uint32_t>(-1), 0});
  EXPECT_EQ(do_root_ids(cfg, keep).err, 0);
}

// An OCI image's User (--rootfs oci:…): the caller shown as that uid:gid, and only that set.
TEST(PvmIdentity, ImageUserIdsAreShownAndOnlyThoseCanBeSet) {
  Config cfg;
  cfg.root = true;
  cfg.shown_uid = 4242;
  cfg.shown_gid = 4343;
  uint32_t r = 7, e = 7, s = 7;
  Call c = self_call(SYS_getresgid, {addr(&r), addr(&e), addr(&s)});
  EXPECT_EQ(do_root_ids(cfg, c).err, 0);
  EXPECT_EQ(r, 4343u);
  EXPECT_EQ(s, 4343u);
  Call u = self_call(SYS_geteuid, {});
  EXPECT_EQ(do_root_ids(cfg, u).val, 4242);
  Call to_root = self_call(SYS_setuid, {0});
  EXPECT_EQ(do_root_ids(cfg, to_root).err, EINVAL);
  Call to_shown = self_call(SYS_setgid, {4343});
  EXPECT_EQ(do_root_ids(cfg, to_shown).err, 0);
  cfg.uid = ::getuid();
  cfg.gid = ::getgid();
  EXPECT_EQ(view_uid(cfg, cfg.uid), 4242u);
  EXPECT_EQ(view_gid(cfg, cfg.gid), 4343u);
  EXPECT_EQ(view_uid(cfg, cfg.uid + 1), kOverflowId);
}

TEST(PvmIdentity, GroupsOfOthersAreTheOverflowId) {
  Config cfg;
  cfg.gid = ::getgid();
  gid_t groups[256];
  Call c = self_call(SYS_getgroups, {256, addr(groups)});
  Answer a = do_getgroups(cfg, c);
  ASSERT_EQ(a.err, 0);
  for (int64_t i = 0; i < a.val; ++i) EXPECT_TRUE(groups[i] == cfg.gid || groups[i] == kOverflowId);
}

TEST(PvmUts, UnameShowsTheViewsHostname) {
  Config cfg;
  cfg.hostname = "box";
  utsname u{};
  Call c = self_call(SYS_uname, {addr(&u)});
  EXPECT_EQ(do_uname(cfg, c).err, 0);
  EXPECT_STREQ(u.nodename, "box");
  Call set = self_call(SYS_sethostname, {addr("x"), 1});
  EXPECT_EQ(do_sethostname(cfg, set).err, EPERM);  // not --root
  cfg.root = true;
  EXPECT_EQ(do_sethostname(cfg, set).err, 0);
  EXPECT_EQ(*cfg.hostname, "x");
}

TEST(PvmNet, SocketNamesAreViewPaths) {
  auto d = TempDir::make("vu-pvm-net");
  ASSERT_TRUE(d.ok());
  Config cfg;
  cfg.map.add({"/view", d->path(), false});
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s/s.sock", d->path().c_str());
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  sockaddr_un got{};
  socklen_t len = sizeof got;
  Call c = self_call(SYS_getsockname, {static_cast<uint64_t>(s.get()), addr(&got), addr(&len)});
  ASSERT_EQ(do_sockname(cfg, c).err, 0);
  EXPECT_STREQ(got.sun_path, "/view/s.sock");
  EXPECT_EQ(len, offsetof(sockaddr_un, sun_path) + sizeof "/view/s.sock");
  socklen_t shortlen = 4;  // truncated, the full length reported
  Call c2 = self_call(SYS_getsockname, {static_cast<uint64_t>(s.get()), addr(&got), addr(&shortlen)});
  ASSERT_EQ(do_sockname(cfg, c2).err, 0);
  EXPECT_EQ(shortlen, len);
}

TEST(PvmFs, TrailingSlashAndMountpointErrors) {
  auto d = TempDir::make("vu-pvm-fs");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(::mkdir((d->path() + "/sub").c_str(), 0755), 0);
  Config cfg;
  cfg.map.add({"/view", d->path(), false});
  const char* p = "/view/new/";
  Call c = self_call(SYS_open, {addr(p), O_WRONLY | O_CREAT | O_CLOEXEC, 0644});
  EXPECT_EQ(do_open(cfg, c, AT_FDCWD, c.a[0], c.arg_int(1), 0644).err, EISDIR);
  Call m = self_call(SYS_mknod, {addr(p), S_IFIFO | 0600, 0});
  EXPECT_EQ(do_mknod(cfg, m, AT_FDCWD, m.a[0], S_IFIFO | 0600, 0).err, ENOENT);
  Call k = self_call(SYS_mkdir, {addr(p), 0755});
  EXPECT_EQ(do_mkdir(cfg, k, AT_FDCWD, k.a[0], 0755).kind, Answer::kValue);
  struct stat st;
  EXPECT_EQ(::stat((d->path() + "/new").c_str(), &st), 0);
  const char* mp = "/view";
  Call r = self_call(SYS_rmdir, {addr(mp)});
  const int e = do_remove(cfg, r, AT_FDCWD, r.a[0], true).err;
  EXPECT_TRUE(e == EBUSY || e == EACCES) << e;  // "/" writable (root) or not
}

}  // namespace
}  // namespace vu::pvm
