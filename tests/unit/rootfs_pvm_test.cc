// --rootfs on pvm: the ELF reader behind the loader rewrite (pvm/rootfs_exec.h), /proc/PID/exe
// names and the table that answers them, the fast path's glibc check (runtime/rootfs_pvm.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>

#include "base/temp_dir.h"
#include "pvm/rootfs_exec.h"
#include "runtime/rootfs_pvm.h"

namespace vu::pvm {
namespace {

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(RootfsExec, ElfInterpOfDynamicStaticAndOtherFiles) {
  std::string interp;
  // This test binary is dynamically linked: its loader is the host's.
  ASSERT_EQ(elf_interp(self_exe(), &interp), 0);
  EXPECT_EQ(interp.rfind("/", 0), 0u) << interp;
  EXPECT_NE(interp.find("ld-linux"), std::string::npos) << interp;
  // The loader itself has no PT_INTERP: it runs as it is.
  std::string none = "x";
  char real[4096];
  ASSERT_TRUE(::realpath(interp.c_str(), real));
  ASSERT_EQ(elf_interp(real, &none), 0);
  EXPECT_EQ(none, "");
  auto dir = TempDir::make("vu-rootfs-unit");
  ASSERT_TRUE(dir);
  std::string script = dir->path() + "/s";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  EXPECT_EQ(elf_interp(script, &interp), ENOEXEC);
  std::string trunc = dir->path() + "/t";
  std::ofstream(trunc) << "\x7f" "ELF";
  EXPECT_EQ(elf_interp(trunc, &interp), ENOEXEC);
  EXPECT_EQ(elf_interp(dir->path(), &interp), EACCES);  // a directory
  EXPECT_EQ(elf_interp(dir->path() + "/missing", &interp), ENOENT);
}

TEST(RootfsExec, LoaderKnowsArgv0) {
  std::string interp;
  ASSERT_EQ(elf_interp(self_exe(), &interp), 0);
  EXPECT_TRUE(loader_knows_argv0(interp));  // (followed: the table is keyed by the file)  // glibc >= 2.33 (Debian 12 has 2.36)
  EXPECT_FALSE(loader_knows_argv0("/nonexistent"));
}

TEST(RootfsExec, ProcExePid) {
  EXPECT_EQ(proc_exe_pid("/proc/123/exe"), 123);
  EXPECT_EQ(proc_exe_pid("/proc/123/task/456/exe"), 456);
  EXPECT_EQ(proc_exe_pid("/proc/123/cwd"), 0);
  EXPECT_EQ(proc_exe_pid("/proc/self/exe"), 0);
  EXPECT_EQ(proc_exe_pid("/proc/12/fd/exe"), 0);
  EXPECT_EQ(proc_exe_pid("/srv/proc/1/exe"), 0);
}

TEST(RootfsExec, ExeTableFollowsExecForkAndExit) {
  ExeTable t;
  t.planned(10, "/usr/bin/ls", "/t/ld.so");
  EXPECT_EQ(t.lookup(10, "/t/ld.so"), "/usr/bin/ls");
  EXPECT_EQ(t.lookup(10, "/t/other"), "");  // the exec failed or something else runs
  t.forked(10, 11);
  EXPECT_EQ(t.lookup(11, "/t/ld.so"), "/usr/bin/ls");
  t.planned(11, "", "");  // a static program next
  EXPECT_EQ(t.lookup(11, "/t/ld.so"), "");
  t.exited(10);
  EXPECT_EQ(t.lookup(10, "/t/ld.so"), "");
}

}  // namespace
}  // namespace vu::pvm

namespace vu {
namespace {
TEST(RootfsPvm, GlibcVersionsMet) {
  using namespace std::string_literals;
  const std::string lib = "x\0GLIBC_2.2.5\0GLIBC_2.34\0y"s;
  EXPECT_TRUE(glibc_versions_met(lib, "\0GLIBC_2.2.5\0GLIBC_2.33\0GLIBC_2.34\0GLIBC_2.36\0"s));
  EXPECT_FALSE(glibc_versions_met(lib, "\0GLIBC_2.2.5\0GLIBC_2.31\0"s));  // an older tree
  EXPECT_FALSE(glibc_versions_met(lib, "musl"));
}
}  // namespace
}  // namespace vu
