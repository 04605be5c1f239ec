#include <unistd.h>

#include <gtest/gtest.h>

#include "bindmount/bindmount.h"

namespace vu::bindmount {
namespace {

TEST(ParseBind, SourceTargetAndOptions) {
  auto m = parse_bind("/srv/data:/mnt:ro");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->source, "/srv/data");
  EXPECT_EQ(m->target, "/mnt");
  EXPECT_TRUE(m->read_only);
  EXPECT_TRUE(m->recursive);
  auto n = parse_bind("/a://b/./c/:rw,norec");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->target, "/b/c");
  EXPECT_FALSE(n->read_only);
  EXPECT_FALSE(n->recursive);
  auto r = parse_bind("/a:/b", /*ro_default=*/true);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->read_only);
}

TEST(ParseBind, RelativeSourceIsMadeAbsolute) {
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  auto m = parse_bind("data/x:/mnt");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->source, std::string(cwd) + "/data/x");
}

TEST(ParseBind, RejectsMalformed) {
  for (const char* bad : {"/a", ":/b", "/a:", "/a:/b:ro:x", "/a:/b:rx", "/a:rel", "/a:/b/../c"}) {
    auto m = parse_bind(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_EQ(m.error().kind(), ErrorKind::kUsage) << bad;
    EXPECT_NE(m.error().message().find("--bind"), std::string::npos) << bad;
  }
}

TEST(ParseTmpfs, DefaultsAndOptions) {
  auto m = parse_tmpfs("/scratch");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, Kind::kTmpfs);
  EXPECT_EQ(m->data, "mode=0755");
  auto o = parse_tmpfs("/s:size=16m,mode=1777,ro");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->data, "mode=1777,size=16m");
  EXPECT_TRUE(o->read_only);
  EXPECT_FALSE(parse_tmpfs("/s:mode=999").ok());
  EXPECT_FALSE(parse_tmpfs("/s:size=").ok());
  EXPECT_FALSE(parse_tmpfs("/s:uid=0").ok());
  EXPECT_FALSE(parse_tmpfs("s").ok());
}

TEST(Check, MissingSourceIsAUsageErrorNamingIt) {
  auto m = parse_bind("/nonexistent/vu-src:/mnt");
  ASSERT_TRUE(m.ok());
  auto r = check(*m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kUsage);
  EXPECT_NE(r.error().message().find("/nonexistent/vu-src"), std::string::npos);
  EXPECT_TRUE(check(*parse_bind("/tmp:/mnt")).ok());
}

TEST(Check, ANewRootIsRefusedNotIgnored) {
  // The ns backend used to accept these and still show the host's /.
  auto b = check(*parse_bind("/tmp:/"));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().kind(), ErrorKind::kUsage);
  EXPECT_NE(b.error().message().find("root"), std::string::npos);
  EXPECT_FALSE(check(*parse_tmpfs("/")).ok());
  EXPECT_FALSE(check(*parse_bind("/tmp://")).ok());
  EXPECT_TRUE(check(*parse_tmpfs("/x")).ok());
}

TEST(Describe, ExplainsCommonErrnos) {
  MountSpec m = *parse_bind("/etc/hostname:/mnt");
  Error e = describe(m, Failure{0, Stage::kMoveMount, ENOTDIR});
  EXPECT_NE(e.message().find("bind /etc/hostname -> /mnt"), std::string::npos);
  EXPECT_NE(e.hint().find("both be directories"), std::string::npos);
}

TEST(ToString, ShowsKindAndFlags) {
  EXPECT_EQ(to_string(*parse_bind("/a:/b:ro")), "bind /a -> /b (ro)");
  EXPECT_EQ(to_string(*parse_tmpfs("/t")), "tmpfs /t (mode=0755)");
}

}  // namespace
}  // namespace vu::bindmount
