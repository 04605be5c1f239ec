// pvm/fuse_client: the FUSE protocol against real programs (squashfuse, fuse2fs: libfuse3 and
// libfuse2) and against a fake one (a thread on the other end of the socketpair) for the ways a
// program fails: never answers INIT, dies, answers late.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "base/temp_dir.h"
#include "pvm/fuse_client.h"

namespace vu::pvm {
namespace {

bool have(const char* prog) {
  std::string cmd = std::string("command -v ") + prog + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The shim next to the test binary's build tree (bin/), as vu finds it next to itself.
std::string shim_path() {
  if (const char* e = std::getenv("VU_FUSE_SHIM_LIB")) return e;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return {};
  self[n] = 0;
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));                // build/tests
  std::string p = dir.substr(0, dir.rfind('/')) + "/bin/libvu-fuse-shim.so";
  return ::access(p.c_str(), R_OK) == 0 ? p : std::string();
}

struct Socketpair {
  UniqueFd ours, theirs;
  Socketpair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    ours.reset(sv[0]);
    theirs.reset(sv[1]);
  }
};

// A fake program: reads one request, then does what `act` says with it.
void serve_one(int fd, const std::function<void(const fuse_in_header&)>& act) {
  char buf[8192];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof h);
  act(h);
}

void reply_init(int fd, uint64_t unique) {
  struct {
    fuse_out_header h;
    fuse_init_out o;
  } r{};
  r.h.len = sizeof r;
  r.h.unique = unique;
  r.o.major = 7;
  r.o.minor = 31;
  r.o.max_write = 65536;
  ASSERT_EQ(::write(fd, &r, sizeof r), static_cast<ssize_t>(sizeof r));
}

TEST(FuseClient, InitTimesOutWhenNothingAnswers) {
  Socketpair sp;
  FuseClient c(std::move(sp.ours), "silent");
  auto r = c.init(200);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("did not answer INIT"), std::string::npos) << r.error().message();
}

TEST(FuseClient, ProgramDeathFailsCallsWithEnotconn) {
  Socketpair sp;
  FuseClient c(std::move(sp.ours), "dies");
  std::thread t([&] {
    serve_one(sp.theirs.get(), [&](const fuse_in_header& h) { reply_init(sp.theirs.get(), h.unique); });
    serve_one(sp.theirs.get(), [&](const fuse_in_header&) { sp.theirs.reset(); });  // dies mid-call
  });
  ASSERT_TRUE(c.init(2000));
  EXPECT_EQ(c.max_write(), 65536u);
  fuse_attr a;
  EXPECT_EQ(c.getattr(1, &a), ENOTCONN);
  t.join();
  EXPECT_FALSE(c.alive());
  EXPECT_EQ(c.getattr(1, &a), ENOTCONN);  // and every later call
}

TEST(FuseClient, LateReplyOfAnAbandonedRequestIsDropped) {
  Socketpair sp;
  FuseClient c(std::move(sp.ours), "late");
  uint64_t first = 0;
  std::thread t([&] {
    serve_one(sp.theirs.get(), [&](const fuse_in_header& h) { reply_init(sp.theirs.get(), h.unique); });
    serve_one(sp.theirs.get(), [&](const fuse_in_header& h) { first = h.unique; });  // no answer yet
    serve_one(sp.theirs.get(), [&](const fuse_in_header& h) {
      // The abandoned request's answer first (ENOENT), then this one's (EACCES).
      for (auto [u, e] : {std::pair{first, -ENOENT}, std::pair{h.unique, -EACCES}}) {
        fuse_out_header o{sizeof o, e, u};
        (void)!::write(sp.theirs.get(), &o, sizeof o);
      }
    });
  });
  ASSERT_TRUE(c.init(2000));
  int polls = 0;
  FuseClient::set_cancelled([&] { return ++polls > 3; });  // the caller gives up after ~60 ms
  fuse_attr a;
  EXPECT_EQ(c.getattr(1, &a), EINTR);
  FuseClient::set_cancelled(nullptr);
  EXPECT_EQ(c.getattr(1, &a), EACCES);
  t.join();
}

// squashfuse (libfuse3, "/dev/fd/N"): a tree with a hard link, a symlink, an executable and an
// empty file; the shadow has them all, content filled on open.
TEST(FuseTree, SquashfsImageIsMaterializedAndFilledOnOpen) {
  if (!have("squashfuse") || !have("mksquashfs")) GTEST_SKIP() << "squashfuse or mksquashfs missing";
  auto tmp = TempDir::make("vu-fuse-test");
  ASSERT_TRUE(tmp);
  const std::string src = tmp->path() + "/src", img = tmp->path() + "/img.sqfs", shadow = tmp->path() + "/shadow";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/d").c_str(), 0750), 0);
  spit(src + "/d/a.txt", "hello squash\n");
  ASSERT_EQ(::link((src + "/d/a.txt").c_str(), (src + "/hard").c_str()), 0);
  ASSERT_EQ(::symlink("d/a.txt", (src + "/sym").c_str()), 0);
  spit(src + "/run.sh", "#!/bin/sh\necho ran\n");
  ASSERT_EQ(::chmod((src + "/run.sh").c_str(), 0755), 0);
  spit(src + "/empty", "");
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  spit(src + "/big", big);
  ASSERT_EQ(std::system(("mksquashfs " + src + " " + img + " -quiet -no-progress >/dev/null 2>&1").c_str()), 0);
  ASSERT_EQ(::mkdir(shadow.c_str(), 0700), 0);
  auto p = start_fuse_program({"squashfuse", "-f", img, "MNT"}, 3, false, "", shadow, "/opt/app", 5000);
  ASSERT_TRUE(p) << p.error().message();
  FuseTree& t = *p->tree;
  struct stat st;
  ASSERT_EQ(::stat((shadow + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::lstat((shadow + "/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(big.size()));
  EXPECT_LT(st.st_blocks * 512, st.st_size);  // sparse: not read yet
  char target[64] = {};
  ASSERT_GT(::readlink((shadow + "/sym").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "d/a.txt");
  // squashfuse gives each name of a hard link its own inode number (so does the kernel's view
  // of it): two shadow files, whose link count is the program's.
  struct stat h;
  ASSERT_EQ(::stat((shadow + "/hard").c_str(), &h), 0);
  Config fcfg;
  fcfg.fuse_trees.push_back(p->tree);
  fuse_adjust_stat(fcfg, &h);
  EXPECT_EQ(h.st_nlink, 2u);
  EXPECT_EQ(slurp(shadow + "/run.sh"), "#!/bin/sh\necho ran\n");  // executables at once
  EXPECT_EQ(t.counts().filled, 1u);
  Call c{};
  c.tid = ::gettid();
  ASSERT_EQ(::stat((shadow + "/big").c_str(), &st), 0);
  Config cfg;
  cfg.fuse_trees.push_back(p->tree);
  EXPECT_EQ(fuse_before_open(cfg, c, shadow + "/big", st, O_RDONLY), 0);
  EXPECT_EQ(slurp(shadow + "/big"), big);
  ASSERT_EQ(::stat((shadow + "/d/a.txt").c_str(), &st), 0);
  EXPECT_EQ(fuse_before_open(cfg, c, shadow + "/d/a.txt", st, O_RDONLY), 0);
  EXPECT_EQ(slurp(shadow + "/d/a.txt"), "hello squash\n");
  struct statfs sf;
  EXPECT_EQ(fuse_statfs(cfg, shadow, &sf), 0);
  EXPECT_EQ(sf.f_type, 0x65735546);
  EXPECT_EQ(stop_fuse_program(*p, 5000), 0) << fuse_program_outcome(*p);  // nothing changed: nothing to write back
}

TEST(FuseTree, AProgramThatListsMoreNamesThanTheCapIsAClearError) {
  if (!have("squashfuse") || !have("mksquashfs")) GTEST_SKIP() << "squashfuse or mksquashfs missing";
  auto tmp = TempDir::make("vu-fuse-test");
  ASSERT_TRUE(tmp);
  const std::string src = tmp->path() + "/src", img = tmp->path() + "/img.sqfs", shadow = tmp->path() + "/shadow";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/d").c_str(), 0755), 0);
  for (int i = 0; i < 6; ++i) spit(src + "/d/f" + std::to_string(i), "x");
  ASSERT_EQ(std::system(("mksquashfs " + src + " " + img + " -quiet -no-progress >/dev/null 2>&1").c_str()), 0);
  ASSERT_EQ(::mkdir(shadow.c_str(), 0700), 0);
  ::setenv("VU_FUSE_MAX_NODES", "5", 1);
  auto p = start_fuse_program({"squashfuse", "-f", img, "MNT"}, 3, false, "", shadow, "/opt/app", 5000);
  ::unsetenv("VU_FUSE_MAX_NODES");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("lists more than 5 names under /opt/app"), std::string::npos) << p.error().message();
}
// fuse2fs (libfuse2 through the shim): changes in the shadow reach the image at sync().
TEST(FuseTree, Ext4ChangesAreWrittenBackAtSync) {
  if (!have("fuse2fs") || !have("mkfs.ext4") || !have("debugfs")) GTEST_SKIP() << "fuse2fs, mkfs.ext4 or debugfs missing";
  const std::string shim = shim_path();
  if (shim.empty()) GTEST_SKIP() << "libvu-fuse-shim.so not built";
  auto tmp = TempDir::make("vu-fuse-test");
  ASSERT_TRUE(tmp);
  const std::string src = tmp->path() + "/src", img = tmp->path() + "/disk.ext4", shadow = tmp->path() + "/shadow";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/old").c_str(), 0755), 0);
  spit(src + "/old/keep", "kept\n");
  spit(src + "/old/gone", "gone\n");
  spit(src + "/edit", "before\n");
  spit(src + "/x", "x\n");
  spit(src + "/y", "y\n");
  ASSERT_EQ(std::system(("mkfs.ext4 -q -F -d " + src + " " + img + " 8M >/dev/null 2>&1").c_str()), 0);
  ASSERT_EQ(::mkdir(shadow.c_str(), 0700), 0);
  auto p = start_fuse_program({"fuse2fs", "-f", img, "MNT", "-o", "rw,fakeroot"}, 3, true, shim, shadow, "/mnt", 5000);
  ASSERT_TRUE(p) << p.error().message();
  Config cfg;
  cfg.fuse_trees.push_back(p->tree);
  Call c{};
  c.tid = ::gettid();
  struct stat st;
  ASSERT_EQ(::stat((shadow + "/edit").c_str(), &st), 0);
  ASSERT_EQ(fuse_before_open(cfg, c, shadow + "/edit", st, O_RDWR), 0);
  spit(shadow + "/edit", "after, longer\n");
  spit(shadow + "/new", "new file\n");
  ASSERT_EQ(::mkdir((shadow + "/newdir").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("../new", (shadow + "/newdir/ln").c_str()), 0);
  ASSERT_EQ(::unlink((shadow + "/old/gone").c_str()), 0);
  ASSERT_EQ(::rename((shadow + "/old/keep").c_str(), (shadow + "/moved").c_str()), 0);
  // Two names that swap places (never opened: the program's content must move with them).
  ASSERT_EQ(::rename((shadow + "/x").c_str(), (shadow + "/t").c_str()), 0);
  ASSERT_EQ(::rename((shadow + "/y").c_str(), (shadow + "/x").c_str()), 0);
  ASSERT_EQ(::rename((shadow + "/t").c_str(), (shadow + "/y").c_str()), 0);
  EXPECT_EQ(p->tree->sync(), 0) << fuse_program_outcome(*p);
  EXPECT_EQ(stop_fuse_program(*p, 5000), 0) << fuse_program_outcome(*p);
  auto cat = [&](const std::string& path) {
    std::string out = tmp->path() + "/out";
    std::string cmd = "debugfs -R 'cat " + path + "' " + img + " >" + out + " 2>/dev/null";
    return std::system(cmd.c_str()) == 0 ? slurp(out) : std::string("(failed)");
  };
  EXPECT_EQ(cat("/edit"), "after, longer\n");
  EXPECT_EQ(cat("/new"), "new file\n");
  EXPECT_EQ(cat("/moved"), "kept\n");
  EXPECT_EQ(cat("/x"), "y\n");
  EXPECT_EQ(cat("/y"), "x\n");
  std::string out = tmp->path() + "/ls";
  ASSERT_EQ(std::system(("debugfs -R 'ls -l /old' " + img + " >" + out + " 2>/dev/null").c_str()), 0);
  EXPECT_EQ(slurp(out).find("gone"), std::string::npos) << slurp(out);
  EXPECT_EQ(slurp(out).find("keep"), std::string::npos) << slurp(out);
  ASSERT_EQ(std::system(("debugfs -R 'stat /newdir/ln' " + img + " >" + out + " 2>/dev/null").c_str()), 0);
  EXPECT_NE(slurp(out).find("../new"), std::string::npos) << slurp(out);
}

TEST(FuseTree, ProgramThatExitsAtOnceIsAClearError) {
  auto tmp = TempDir::make("vu-fuse-test");
  ASSERT_TRUE(tmp);
  const std::string shadow = tmp->path() + "/shadow";
  ASSERT_EQ(::mkdir(shadow.c_str(), 0700), 0);
  auto p = start_fuse_program({"/bin/sh", "-c", "echo cannot open the image >&2; exit 3", "vu-fuse", "MNT"}, 4, false,
                              "", shadow, "/mnt", 5000);
  ASSERT_FALSE(p);
  const std::string m = p.error().message() + " " + p.error().hint();
  EXPECT_NE(m.find("exited before serving"), std::string::npos) << m;
  EXPECT_NE(m.find("cannot open the image"), std::string::npos) << m;
}

}  // namespace
}  // namespace vu::pvm
