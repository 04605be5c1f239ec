#include <sched.h>

#include <gtest/gtest.h>

#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/exit_codes.h"
#include "runtime/plan.h"
#include "runtime/view_spec.h"

namespace vu {
namespace {

Result<Invocation> parse(std::vector<std::string> args) {
  static std::vector<std::string> keep;
  keep = std::move(args);
  keep.insert(keep.begin(), "vu");
  std::vector<char*> argv;
  for (std::string& a : keep) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_args(static_cast<int>(keep.size()), argv.data());
}

TEST(Cli, RunOptionsStopAtTheCommand) {
  auto inv = parse({"run", "--root", "--hostname", "box", "ls", "--root", "-l"});
  ASSERT_TRUE(inv.ok()) << inv.error().to_string();
  EXPECT_EQ(inv->command, Invocation::Command::kRun);
  EXPECT_EQ(inv->spec.identity, userns::Identity::kRoot);
  EXPECT_EQ(*inv->spec.hostname, "box");
  EXPECT_EQ(inv->spec.command, (std::vector<std::string>{"ls", "--root", "-l"}));
}

TEST(Cli, DoubleDashEndsOptions) {
  auto inv = parse({"run", "-r", "--", "--weird", "x"});
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->spec.command, (std::vector<std::string>{"--weird", "x"}));
}

TEST(Cli, MountsKeepCommandLineOrderAcrossOptions) {
  auto inv = parse({"run", "--tmpfs", "/a", "--bind", "/tmp:/a/b", "--ro-bind=/tmp:/a/c",
                    "--tmpfs", "/a/d", "--", "true"});
  ASSERT_TRUE(inv.ok()) << inv.error().to_string();
  ASSERT_EQ(inv->spec.mounts.size(), 4u);
  EXPECT_EQ(inv->spec.mounts[0].target, "/a");
  EXPECT_EQ(inv->spec.mounts[1].target, "/a/b");
  EXPECT_EQ(inv->spec.mounts[2].target, "/a/c");
  EXPECT_TRUE(inv->spec.mounts[2].read_only);
  EXPECT_EQ(inv->spec.mounts[3].target, "/a/d");
}

TEST(Cli, UnknownOptionAndBadValueAreUsageErrors) {
  auto a = parse({"run", "--frob", "--", "true"});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(exit_status_for(a.error().kind()), kExitUsage);
  EXPECT_NE(a.error().message().find("--frob"), std::string::npos);
  auto b = parse({"run", "--ip", "moon/24", "true"});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("moon"), std::string::npos);
  auto c = parse({"frobnicate"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind(), ErrorKind::kUsage);
}

TEST(Cli, HelpIsShownNotAnError) {
  auto inv = parse({"run", "--help"});
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->command, Invocation::Command::kHelpShown);
  for (const OptionDef& o : run_options())
    EXPECT_NE(inv->help.find(std::string("--") + o.name), std::string::npos) << o.name;
  EXPECT_NE(inv->help.find("Exit status"), std::string::npos);
}

TEST(Cli, ShellTakesNoCommand) {
  EXPECT_FALSE(parse({"shell", "ls"}).ok());
  auto inv = parse({"shell", "--root"});
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->command, Invocation::Command::kShell);
}

TEST(Config, KeysAreTheLongOptions) {
  ViewSpec s;
  auto r = load_config_text(
      "command = [\"sh\", \"-c\", \"id\"]\n"
      "root = true\n"
      "hostname = \"box\"\n"
      "tmpfs = [\"/scratch\"]\n"
      "bind = [\"/tmp:/mnt:ro\"]\n"
      "net = [\"none\"]\n"
      "setenv = [\"A=1\"]\n",
      "view.toml", &s);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(s.command.size(), 3u);
  EXPECT_EQ(s.identity, userns::Identity::kRoot);
  EXPECT_EQ(*s.hostname, "box");
  EXPECT_EQ(s.net.kind, vdens::NetKind::kNone);
  ASSERT_EQ(s.mounts.size(), 2u);
  EXPECT_EQ(s.mounts[0].target, "/scratch");  // document order, across keys
  EXPECT_EQ(s.mounts[1].target, "/mnt");
  EXPECT_EQ(s.setenv[0].first, "A");
}

TEST(Config, EveryOptionIsAKey) {
  for (const OptionDef& o : run_options()) {
    ViewSpec s;
    std::string key = o.name;
    std::string text = key + " = ";
    if (o.is_flag) text += "true";
    else if (key == "bind" || key == "ro-bind") text += "[\"/tmp:/mnt\"]";
    else if (key == "tmpfs" || key == "chdir") text += o.repeatable ? "[\"/t\"]" : "\"/t\"";
    else if (key == "net") text += "[\"none\"]";
    else if (key == "ip") text += "[\"10.0.0.1/24\"]";
    else if (key == "gw") text += "\"10.0.0.2\"";
    else if (key == "dns") text += "[\"10.0.0.3\"]";
    else if (key == "publish") text += "[\"8080:80\"]";
    else if (key == "cap") text += "[\"net_admin\"]";
    else if (key == "mtu") text += "\"9000\"";
    else if (key == "backend") text += "\"ns\"";
    else if (key == "setenv") text += "[\"A=B\"]";
    else text += o.repeatable ? "[\"x\"]" : "\"x\"";
    auto r = load_config_text(text, "t.toml", &s);
    EXPECT_TRUE(r.ok()) << key << ": " << r.error().to_string();
  }
}

TEST(Config, ErrorsNameFileLineAndKey) {
  ViewSpec s;
  auto a = load_config_text("root = true\nbnid = [\"/a:/b\"]\n", "v.toml", &s);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("v.toml:2"), std::string::npos);
  EXPECT_NE(a.error().message().find("bnid"), std::string::npos);
  EXPECT_NE(a.error().hint().find("bind"), std::string::npos);

  auto b = load_config_text("root = \"yes\"\n", "v.toml", &s);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("true or false"), std::string::npos);

  auto c = load_config_text("hostname = [\"a\", \"b\"]\n", "v.toml", &s);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("one value"), std::string::npos);

  auto d = load_config_text("bind = [\"/a:rel\"]\n", "v.toml", &s);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("v.toml:1"), std::string::npos);

  auto e = load_config_text("root = \n", "v.toml", &s);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().kind(), ErrorKind::kUsage);
  EXPECT_NE(e.error().message().find("malformed"), std::string::npos);
}

TEST(Config, MissingFileIsAUsageError) {
  ViewSpec s;
  auto r = load_config_file("/nonexistent/view.toml", &s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind(), ErrorKind::kUsage);
}

TEST(NetSpec, SlirpDefaultsAndChecks) {
  vdens::NetSpec n;
  ASSERT_TRUE(vdens::add_net(n, "slirp:allow-host-loopback").ok());
  ASSERT_TRUE(vdens::add_net(n, "vde:///tmp/sw").ok());
  ASSERT_TRUE(vdens::add_forward(n, "8080:80").ok());
  ASSERT_TRUE(vdens::add_forward(n, "0.0.0.0:5353:53/udp").ok());
  ASSERT_TRUE(vdens::finish(n).ok());
  EXPECT_TRUE(n.uplinks[0].slirp);
  EXPECT_TRUE(n.uplinks[0].allow_host_loopback);
  EXPECT_FALSE(n.uplinks[1].slirp);
  EXPECT_EQ(vdens::to_string(n.ip[0]), "10.0.2.100/24");
  EXPECT_EQ(vdens::to_string(n.gateway[0]), "10.0.2.2");
  EXPECT_EQ(n.dns, (std::vector<std::string>{"10.0.2.3"}));
  EXPECT_EQ(vdens::to_string(n.forwards[0].host_addr), "127.0.0.1");
  EXPECT_TRUE(n.forwards[1].udp);
  EXPECT_EQ(n.forwards[1].view_port, 53);
  ASSERT_TRUE(vdens::add_forward(n, "[::1]:8443:443").ok());
  EXPECT_TRUE(n.forwards[2].v6);
  EXPECT_EQ(n.forwards[2].host_port, 8443);
  EXPECT_FALSE(vdens::add_forward(n, "[::1:8443:443").ok());
  EXPECT_FALSE(vdens::add_forward(n, "[nope]:1:2").ok());
}

TEST(NetSpec, BadInputNamesTheOption) {
  vdens::NetSpec n;
  EXPECT_FALSE(vdens::add_net(n, "slirp:frob").ok());
  EXPECT_FALSE(vdens::add_ip(n, "10.0.0.1").ok());
  EXPECT_FALSE(vdens::add_ip(n, "10.0.0.1/33").ok());
  EXPECT_FALSE(vdens::add_forward(n, "80").ok());
  EXPECT_FALSE(vdens::add_forward(n, "70000:80").ok());
  EXPECT_FALSE(vdens::add_dns(n, "resolver").ok());
  vdens::NetSpec none;
  ASSERT_TRUE(vdens::add_net(none, "none").ok());
  EXPECT_FALSE(vdens::add_net(none, "slirp").ok());
  vdens::NetSpec fwd;
  ASSERT_TRUE(vdens::add_net(fwd, "vde:///tmp/sw").ok());
  ASSERT_TRUE(vdens::add_forward(fwd, "8080:80").ok());
  auto r = vdens::finish(fwd);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("need a slirp network"), std::string::npos);
}

TEST(NetSpec, MtuRangeAndVdeLimit) {
  vdens::NetSpec n;
  EXPECT_FALSE(vdens::set_mtu(n, "100").ok());
  EXPECT_FALSE(vdens::set_mtu(n, "70000").ok());
  ASSERT_TRUE(vdens::add_net(n, "switch:///tmp/sw").ok());
  ASSERT_TRUE(vdens::set_mtu(n, "9000").ok());
  EXPECT_TRUE(vdens::finish(n).ok());
  vdens::NetSpec big;
  ASSERT_TRUE(vdens::add_net(big, "vde:///tmp/sw").ok());
  ASSERT_TRUE(vdens::set_mtu(big, "65520").ok());
  auto r = vdens::finish(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("at most 9198"), std::string::npos);
}

TEST(NetSpec, DefaultIsSlirpUnlessHostOrNoneIsSaid) {
  vdens::NetSpec d;
  ASSERT_TRUE(vdens::finish(d).ok());
  EXPECT_EQ(d.kind, vdens::NetKind::kUplinks);
  ASSERT_EQ(d.uplinks.size(), 1u);
  EXPECT_TRUE(d.uplinks[0].slirp);
  vdens::NetSpec h;
  ASSERT_TRUE(vdens::add_net(h, "host").ok());
  ASSERT_TRUE(vdens::finish(h).ok());
  EXPECT_EQ(h.kind, vdens::NetKind::kHost);
  EXPECT_TRUE(h.uplinks.empty());
}

TEST(Plan, NamespacesFollowTheSpec) {
  ViewSpec s;
  auto p = make_plan(s, nullptr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->clone_flags & CLONE_NEWNET, 0u);
  EXPECT_NE(p->clone_flags & CLONE_NEWUSER, 0u);
  s.net.kind = vdens::NetKind::kNone;
  auto q = make_plan(s, nullptr);
  ASSERT_TRUE(q.ok());
  EXPECT_NE(q->clone_flags & CLONE_NEWNET, 0u);
  EXPECT_NE(to_string(*q).find("lo up"), std::string::npos);
}

TEST(Plan, DeniedUsernsExplainsAndNeverFallsBackQuietly) {
  ViewSpec s;
  s.backend = BackendWish::kNs;
  Fact denied{"user namespaces", false, "unshare(CLONE_NEWUSER): EPERM — a seccomp filter"};
  auto p = make_plan(s, &denied);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().kind(), ErrorKind::kDenied);
  EXPECT_EQ(exit_status_for(p.error().kind()), kExitSetup);
  EXPECT_NE(p.error().message().find("seccomp"), std::string::npos);
  EXPECT_NE(p.error().message().find("--backend=ns"), std::string::npos);
}

}  // namespace
}  // namespace vu
