// Units of issue 16's environment B: the mount hook's bookkeeping (pvm/fuse_mount.h), the
// FUSE targets in the path map (runtime/pvm_backend.cc), the probe and the programs' argv
// (runtime/pvm_fuse.cc). The mounts themselves: tests/integration/fs_pvm_fuse_test.sh.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/fuse_mount.h"
#include "pvm/path_map.h"
#include "runtime/pvm_backend.h"
#include "runtime/pvm_fuse.h"

namespace vu {
namespace {

class NoMounter : public pvm::FuseMounter {
 public:
  Result<UniqueFd> mount(const pvm::FuseMountRequest&) override { return Error::make(ErrorKind::kSetup, "no"); }
  void unmount_all() override {}
  std::string describe() const override { return "none"; }
};

TEST(FuseHook, OnlyTheTokenRegistersAServerAndItsChildrenAreServers) {
  pvm::FuseHook hook({{"/mnt", "/tmp/x", "a"}, {"/opt", "/tmp/y", "b"}}, std::make_shared<NoMounter>());
  const pid_t self = ::getpid();
  EXPECT_FALSE(hook.is_server(self));  // nobody registered: not even a lookup
  EXPECT_FALSE(hook.claim(self, pvm::FuseHook::kClaimBase, hook.token() + 1));  // wrong token
  EXPECT_FALSE(hook.claim(self, pvm::FuseHook::kClaimBase - 2, hook.token()));  // no third program
  EXPECT_FALSE(hook.claim(self, 5, hook.token()));                              // an ordinary getgroups
  ASSERT_TRUE(hook.claim(self, pvm::FuseHook::kClaimBase - 1, hook.token()));
  EXPECT_EQ(hook.server_index(self), 1);
  EXPECT_TRUE(hook.is_server(self));
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  EXPECT_TRUE(hook.is_server(child));  // its parent is a server
  EXPECT_EQ(hook.server_index(child), -1);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  hook.forget(child);
  EXPECT_EQ(hook.target_of("/opt"), 1u);
  EXPECT_EQ(hook.target_of("/srv"), 2u);
  EXPECT_FALSE(hook.all_mounted());
  hook.mounted(0, self);
  hook.mounted(1, self);
  EXPECT_TRUE(hook.all_mounted());
  EXPECT_FALSE(hook.failure());
  hook.failed(0, "why");
  EXPECT_EQ(*hook.failure(), "why");
}

TEST(FuseHook, OneMountPerTargetCheckedAndClaimedInOneStep) {
  pvm::FuseHook hook({{"/mnt", "/tmp/x", "a"}}, std::make_shared<NoMounter>());
  EXPECT_TRUE(hook.begin_mount(0));
  EXPECT_FALSE(hook.begin_mount(0));  // a second mount(2) while the first is in progress: EBUSY
  hook.failed(0, "fusermount3 failed");
  EXPECT_TRUE(hook.begin_mount(0));  // a failed mount releases the target
  hook.mounted(0, ::getpid());
  EXPECT_FALSE(hook.begin_mount(0));  // mounted
  EXPECT_FALSE(hook.begin_mount(1));  // no such target
}

TEST(PvmFuseConfig, TargetsAreBoundAndTheProgramsSeeWhatWasThere) {
  auto tmp = TempDir::make("vu-fuse-unit");
  ASSERT_TRUE(tmp);
  const std::string low = tmp->path() + "/low";
  ASSERT_EQ(::mkdir(low.c_str(), 0755), 0);
  ViewSpec spec;
  std::vector<fusefs::FuseMount> programs(2);
  programs[0].target = low;              // exists on the host (a --cow target)
  programs[0].argv = {"vu-cowfs"};
  programs[1].target = "/vu-unit-missing/app";  // does not
  programs[1].argv = {"squashfuse"};
  std::optional<TempDir> scratch;
  std::vector<pvm::FuseTarget> targets;
  pvm::PathMap server;
  auto cfg = make_pvm_config(spec, &scratch, &programs, &targets, &server);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].view, low);
  // The view sees the private directories (empty until mounted) at both targets.
  EXPECT_EQ(cfg->map.resolve({}, low, true, {}).host, targets[0].host);
  EXPECT_EQ(cfg->map.resolve({}, "/vu-unit-missing/app", true, {}).host, targets[1].host);
  // The programs: the host's directory where there was one, the private one where not.
  EXPECT_EQ(server.resolve({}, low, true, {}).host, low);
  pvm::Resolved missing = server.resolve({}, "/vu-unit-missing/app", true, {});
  EXPECT_TRUE(missing.exists);
  EXPECT_EQ(missing.host, targets[1].host);
}

TEST(PvmFuseConfig, AFuseTargetInsideACowDirectoryComesAfterIt) {
  // ns order: --cow first, then --fuse/--mount (a FUSE target inside the copy-on-write
  // directory covers that part of it).
  auto tmp = TempDir::make("vu-fuse-unit");
  ASSERT_TRUE(tmp);
  const std::string low = tmp->path() + "/low", sub = low + "/sub";
  ASSERT_EQ(::mkdir(low.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  ViewSpec spec;
  spec.cows.push_back({tmp->path() + "/layer", low});
  std::vector<fusefs::FuseMount> programs(1);
  programs[0].target = sub;
  programs[0].argv = {"squashfuse"};
  std::optional<TempDir> scratch;
  std::vector<pvm::FuseTarget> targets;
  pvm::PathMap server;
  auto cfg = make_pvm_config(spec, &scratch, &programs, &targets, &server);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(cfg->map.resolve({}, sub, true, {}).host, targets[0].host);  // the FUSE mount, not the layer
  EXPECT_TRUE(cfg->map.resolve({}, low, true, {}).cow);
}

TEST(PvmFuseConfig, ImageProgramsStayInTheForeground) {
  ViewSpec spec;
  fusefs::FuseMount m;
  m.target = "/mnt";
  m.argv = {"fuse2fs", "img", "/mnt", "-o", "rw,fakeroot,nonempty,allow_other,default_permissions"};
  spec.fuse.push_back(m);
  auto p = pvm_fuse_programs(spec);
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)[0].argv.back(), "-f");
  EXPECT_NE((*p)[0].argv[4].find("default_permissions"), std::string::npos);
  spec.identity = userns::Identity::kRoot;  // the image's owners are the view's root's
  auto r = pvm_fuse_programs(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].argv[4], "rw,fakeroot,nonempty,allow_other");
}

TEST(PvmFuseProbe, NoNewPrivsIsEnvironmentA) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    PvmFuseEnv e = probe_pvm_fuse();
    const char* verdict = !e.b && e.why.find("no_new_privs") != std::string::npos ? "A" : "?";
    (void)!::write(pipefd[1], verdict, 1);
    ::_exit(0);
  }
  ::close(pipefd[1]);
  char c = 0;
  EXPECT_EQ(::read(pipefd[0], &c, 1), 1);
  ::close(pipefd[0]);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(c, 'A');
}

TEST(PathMapMagic, AFileWithNoNameIsReachedThroughItsLink) {
  auto tmp = TempDir::make("vu-fuse-unit");
  ASSERT_TRUE(tmp);
  int fd = ::open(tmp->path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) GTEST_SKIP() << "no O_TMPFILE on " << tmp->path();
  pvm::PathMap map;
  map.add({"/elsewhere", "/tmp", false});
  pvm::Caller me{::getpid(), ::gettid()};
  const std::string link = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd);
  pvm::Resolved r = map.resolve({}, "/proc/self/fd/" + std::to_string(fd), true, me);
  ::close(fd);
  ASSERT_EQ(r.err, 0);
  EXPECT_TRUE(r.exists);
  EXPECT_EQ(r.host, link);  // the link itself: linkat(…, AT_SYMLINK_FOLLOW) runs natively
  EXPECT_FALSE(r.moved);
}

}  // namespace
}  // namespace vu
