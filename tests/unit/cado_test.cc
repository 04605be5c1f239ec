// The cado suite's parsers (cado/cado_parse.c): capability lists, cado.conf, scado lines.
#include <gtest/gtest.h>

#include <cstring>

#include <string>
#include <vector>

#include "cado_parse.h"

namespace {

uint64_t caps(const char* s) {
  uint64_t c = 0;
  EXPECT_EQ(cado_capset_parse(s, std::strlen(s), &c), 0) << s;
  return c;
}

TEST(CadoCapset, NamesAndHex) {
  EXPECT_EQ(caps("net_admin"), uint64_t{1} << 12);
  EXPECT_EQ(caps("cap_net_admin,net_raw"), uint64_t{3} << 12);
  EXPECT_EQ(caps("CAP_NET_RAW"), uint64_t{1} << 13);
  EXPECT_EQ(caps("3000"), uint64_t{0x3000});         // hex first, as the original
  EXPECT_EQ(caps(" net_admin , net_raw "), uint64_t{0x3000});
  uint64_t c;
  EXPECT_EQ(caps("net_admin,"), uint64_t{1} << 12);  // a trailing comma, as the original (strtok)
  for (const char* bad : {"", ",", ",net_admin", "nosuchcap", "cap_", "12345678901234567"})
    EXPECT_EQ(cado_capset_parse(bad, std::strlen(bad), &c), -1) << bad;
}

struct Conds {
  std::vector<std::string> ran;
  int answer = 0;
};
int cond(const char* cmd, size_t len, void* ctx) {
  auto* c = static_cast<Conds*>(ctx);
  c->ran.emplace_back(cmd, len);
  return c->answer;
}

TEST(CadoConf, UsersGroupsConditions) {
  const std::string conf =
      "# comment\n"
      "  net_admin,net_raw : alice, bob\n"
      "sys_time: @wheel\n"
      "sys_nice : carol : /bin/true ; /usr/bin/test -x $HOME\n"
      "not_a_cap : alice\n"
      "sys_ptrace : alicex\n";
  const char* alice_groups[] = {"alice", "wheel", nullptr};
  cado_who alice{"alice", alice_groups};
  Conds c;
  int bad = 0;
  EXPECT_EQ(cado_conf_allowed(conf.data(), conf.size(), &alice, ~uint64_t{0}, cond, &c, &bad),
            caps("net_admin,net_raw,sys_time"));
  EXPECT_EQ(bad, 1);
  EXPECT_TRUE(c.ran.empty());
  const char* carol_groups[] = {"carol", nullptr};
  cado_who carol{"carol", carol_groups};
  EXPECT_EQ(cado_conf_allowed(conf.data(), conf.size(), &carol, ~uint64_t{0}, cond, &c, &bad), caps("sys_nice"));
  EXPECT_EQ(c.ran, (std::vector<std::string>{"/bin/true", "/usr/bin/test -x $HOME"}));
  c.answer = 1;
  c.ran.clear();
  EXPECT_EQ(cado_conf_allowed(conf.data(), conf.size(), &carol, ~uint64_t{0}, cond, &c, &bad), 0u);
  EXPECT_EQ(c.ran.size(), 1u) << "the conditions stop at the first that fails";
  // Stops scanning once the wanted set is allowed: the sys_nice line's conditions never run.
  c.ran.clear();
  EXPECT_EQ(cado_conf_allowed(conf.data(), conf.size(), &alice, caps("net_raw"), cond, &c, &bad), caps("net_admin,net_raw"));
  // cado -s: every capability any line names.
  EXPECT_EQ(cado_conf_allowed(conf.data(), conf.size(), nullptr, ~uint64_t{0}, cond, &c, &bad),
            caps("net_admin,net_raw,sys_time,sys_nice,sys_ptrace"));
}

TEST(CadoScado, FindAndCheck) {
  const std::string d(64, 'a');
  const std::string text = "# This is a scado file.\n/usr/bin/ping : net_raw : " + d +
                           "\n/usr/bin/ip : net_admin\n/opt/a\\:b : net_raw :\n";
  uint64_t c;
  char digest[65];
  ASSERT_EQ(cado_scado_find(text.data(), text.size(), "/usr/bin/ping", &c, digest), 1);
  EXPECT_EQ(c, caps("net_raw"));
  EXPECT_EQ(std::string(digest), d);
  ASSERT_EQ(cado_scado_find(text.data(), text.size(), "/usr/bin/ip", &c, digest), 1);
  EXPECT_EQ(std::string(digest), "");
  ASSERT_EQ(cado_scado_find(text.data(), text.size(), "/opt/a:b", &c, digest), 1);
  EXPECT_EQ(cado_scado_find(text.data(), text.size(), "/usr/bin/nope", &c, digest), 0);
  auto check = [](const std::string& l) {
    const char* e = cado_scado_check_line(l.data(), l.size());
    return std::string(e ? e : "");
  };
  EXPECT_EQ(check("/bin/x : net_raw"), "");
  EXPECT_EQ(check("# whatever"), "");
  EXPECT_EQ(check("bin/x : net_raw"), "pathname is not absolute");
  EXPECT_EQ(check("/bin/x"), "missing capability set");
  EXPECT_EQ(check("/bin/x : nonsense"), "wrong capability syntax");
  EXPECT_EQ(check("/bin/x : net_raw : 1234"), "wrong digest syntax");
  EXPECT_EQ(check("/bin/x : net_raw : " + d + " : more"), "extra trailing chars");
}

// cado -S keeps a short list of the caller's variables, and only values that name no file.
TEST(CadoLog, UserTextCannotForgeALine) {
  char out[CADO_LOG_TEXT_SIZE];
  EXPECT_STREQ(cado_log_text("/usr/bin/ip", out), "/usr/bin/ip");
  EXPECT_STREQ(cado_log_text("a\nuser root: granted ffff to /bin/sh", out), "a\\x0auser root: granted ffff to /bin/sh");
  EXPECT_STREQ(cado_log_text("\x1b[2Jx\\y\xc3\xa9", out), "\\x1b[2Jx\\x5cy\\xc3\\xa9");
  std::string worst(300, '\x01');
  cado_log_text(worst.c_str(), out);
  EXPECT_EQ(std::strlen(out), 200u * 4 + 3);  // cut, and fits
  EXPECT_STREQ(out + 800, "...");
  EXPECT_STREQ(cado_log_text(nullptr, out), "");
}

TEST(CadoEnv, KeepList) {
  for (const char* kept : {"TERM=xterm-256color", "COLORTERM=truecolor", "LANG=C.UTF-8", "LANGUAGE=it:en",
                           "LC_ALL=C", "LC_TIME=en_GB.UTF-8", "TZ=Europe/Rome", "TZ=:Europe/Rome", "TZ=UTC",
                           "DISPLAY=:0", "XAUTHORITY=/home/a/.Xauthority", "WAYLAND_DISPLAY=wayland-0"})
    EXPECT_EQ(cado_env_keep(kept), 1) << kept;
  for (const char* dropped : {"BASH_ENV=/tmp/x", "ENV=/tmp/x", "PATH=/tmp:/usr/bin", "PYTHONPATH=/tmp",
                              "PERL5OPT=-Mevil", "PERL5LIB=/tmp", "RUBYOPT=-r/tmp/x", "NODE_OPTIONS=-r /tmp/x",
                              "LD_PRELOAD=/tmp/x.so", "GCONV_PATH=/tmp", "IFS=x", "SHELLOPTS=xtrace", "PS4=$(id)",
                              "HOME=/tmp", "SHELL=/tmp/sh", "LC_ALL=../../tmp/x", "LANG=/tmp/x", "TERM=../x/y",
                              "TERM=x%n", "TZ=/tmp/zone", "TZ=:/tmp/zone", "TZ=../../tmp/zone", "TERMINFO=/tmp",
                              "LC_", "TERM", "XTERM=x", "TERMX=x"})
    EXPECT_EQ(cado_env_keep(dropped), 0) << dropped;
}

}  // namespace
