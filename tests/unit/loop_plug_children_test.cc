// vdens/plug_children.h: a VNL's command that ignores its pipes' end (cmd://sleep) is ended
// before vde_close waits for it, SIGTERM first and SIGKILL for one that ignores SIGTERM, and
// left for vde_close to reap.
#include <gtest/gtest.h>

#include <algorithm>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vdens/plug_children.h"

namespace {

pid_t child(bool ignore_term) {
  pid_t p = ::fork();
  if (p == 0) {
    if (ignore_term) ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  }
  return p;
}

TEST(PlugChildren, EndsChildrenAndLeavesThemToBeReaped) {
  pid_t a = child(false), b = child(true);
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  ::usleep(50000);  // b has installed SIG_IGN
  const auto kids = vu::vdens::plug_children();
  EXPECT_NE(std::find(kids.begin(), kids.end(), a), kids.end());
  EXPECT_NE(std::find(kids.begin(), kids.end(), b), kids.end());
  vu::vdens::end_plug_children();
  int st = 0;
  // Not reaped by end_plug_children: vde_close's waitpid gets them.
  ASSERT_EQ(::waitpid(a, &st, 0), a);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
  ASSERT_EQ(::waitpid(b, &st, 0), b);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  EXPECT_TRUE(vu::vdens::plug_children().empty());
  vu::vdens::end_plug_children();  // none: returns at once
}

}  // namespace
