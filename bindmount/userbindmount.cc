#include "bindmount/userbindmount.h"

#include <getopt.h>
#include <sched.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "userns/userns.h"

namespace vu::bindmount {

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFail = 1;  // as the original: mount or unshare errors exit 1

void usage(FILE* out, const char* prog) {
  std::fprintf(out,
               "Usage: %s [OPTIONS] [SRC TGT [SRC TGT ...]] [-- [CMD [ARGS...]]]\n"
               "Bind-mount each SRC on TGT, in a new user and mount namespace when asked.\n"
               "\n"
               "  -n, --newns    create a new user+mount namespace (also implied by --)\n"
               "  -s, --sysadm   give CMD the CAP_SYS_ADMIN ambient capability\n"
               "  -v, --verbose  say what is being done\n"
               "  -h, --help     show this help and exit\n"
               "\n"
               "SRC may be \"-\" or \"\" (the contents of standard input) or a string in double\n"
               "quotes (its literal contents), e.g. $'\"nameserver 9.9.9.9\\n\"'.\n"
               "CMD defaults to $SHELL. Exit status: CMD's; 1 when a namespace or mount cannot\n"
               "be made; 2 on a usage error; 127/126 when CMD cannot be found/executed.\n",
               prog);
}

int fail(const Error& e) {
  std::fprintf(stderr, "userbindmount: %s\n", e.to_string().c_str());
  return kExitFail;
}

Result<void> unshare_userns() {
  userns::MapStage stage;
  if (int err = userns::unshare_keep_ids(CLONE_NEWNS, &stage)) {
    if (stage == userns::MapStage::kNone)
      return Error::sys("unshare", err, "(CLONE_NEWUSER|CLONE_NEWNS)");
    return Error::sys("write id map", err);
  }
  return Ok{};
}

Result<void> raise_sysadm() {
  cap_t caps = cap_get_proc();
  if (!caps) return Error::sys("cap_get_proc", errno);
  cap_value_t v = CAP_SYS_ADMIN;
  int r = cap_set_flag(caps, CAP_INHERITABLE, 1, &v, CAP_SET);
  if (r == 0) r = cap_set_proc(caps);
  int err = errno;
  cap_free(caps);
  if (r < 0) return Error::sys("cap_set_proc", err, "(CAP_SYS_ADMIN inheritable)");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0) < 0)
    return Error::sys("prctl", errno, "(PR_CAP_AMBIENT_RAISE CAP_SYS_ADMIN)");
  return Ok{};
}

Result<std::string> read_stdin() {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("read", errno, "standard input");
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Writes data to a 0600 temporary file, binds it on target, unlinks it.
Result<void> bind_data(const std::string& data, const char* target) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/userbindmountXXXXXX";
  UniqueFd fd(::mkostemp(path.data(), O_CLOEXEC));
  if (!fd) return Error::sys("mkstemp", errno, path);
  Result<void> r = sys::write_all(fd.get(), data, path);
  if (r && ::mount(path.c_str(), target, nullptr, MS_BIND, nullptr) < 0)
    r = Error::sys("mount", errno, path + " on " + target);
  ::unlink(path.c_str());
  return r;
}

int exec_command(char** cmd, bool verbose) {
  char* shell_argv[2] = {std::getenv("SHELL"), nullptr};
  if (!cmd || !cmd[0]) {
    if (!shell_argv[0]) {
      std::fprintf(stderr, "userbindmount: $SHELL is not set; give a command after --\n");
      return kExitUsage;
    }
    cmd = shell_argv;
  }
  if (verbose) std::fprintf(stderr, "starting %s\n", cmd[0]);
  ::execvp(cmd[0], cmd);
  int err = errno;
  std::fprintf(stderr, "userbindmount: %s: %s\n", cmd[0], std::strerror(err));
  return err == ENOENT ? 127 : 126;
}

}  // namespace

int userbindmount_main(int argc, char** argv) {
  static const struct option kLong[] = {{"newns", no_argument, nullptr, 'n'},
                                        {"sysadm", no_argument, nullptr, 's'},
                                        {"verbose", no_argument, nullptr, 'v'},
                                        {"help", no_argument, nullptr, 'h'},
                                        {nullptr, 0, nullptr, 0}};
  bool newns = false, sysadm = false, verbose = false;
  const char* prog = "userbindmount";
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "+shvn", kLong, nullptr)) != -1) {
    switch (c) {
      case 'n': newns = true; break;
      case 's': sysadm = true; break;
      case 'v': verbose = true; break;
      case 'h': usage(stdout, prog); return 0;
      default: usage(stderr, prog); return kExitUsage;
    }
  }
  // Pairs run up to "--" (getopt has consumed a leading "--" itself: look back one).
  std::vector<char*> paths;
  char** cmd = nullptr;
  bool dashdash = optind > 1 && std::strcmp(argv[optind - 1], "--") == 0;
  if (dashdash) {
    cmd = argv + optind;
  } else {
    for (int i = optind; i < argc; ++i) {
      if (std::strcmp(argv[i], "--") == 0) {
        dashdash = true;
        cmd = argv + i + 1;
        break;
      }
      paths.push_back(argv[i]);
    }
  }
  if (paths.size() % 2) {
    std::fprintf(stderr, "userbindmount: %s has no target: paths come in SRC TGT pairs\n",
                 paths.back());
    usage(stderr, prog);
    return kExitUsage;
  }
  newns = newns || dashdash;
  if (newns) {
    if (verbose) std::fprintf(stderr, "creating a user_namespace\n");
    if (auto r = unshare_userns(); !r) return fail(r.error());
  }
  for (size_t i = 0; i < paths.size(); i += 2) {
    const char* src = paths[i];
    const char* tgt = paths[i + 1];
    if (verbose) std::fprintf(stderr, "mounting %s on %s\n", src, tgt);
    size_t len = std::strlen(src);
    Result<void> r = Ok{};
    if (len == 0 || std::strcmp(src, "-") == 0) {
      auto data = read_stdin();
      r = data ? bind_data(*data, tgt) : Result<void>(std::move(data).error());
    } else if (len >= 2 && src[0] == '"' && src[len - 1] == '"') {
      r = bind_data(std::string(src + 1, len - 2), tgt);
    } else if (::mount(src, tgt, nullptr, MS_BIND, nullptr) < 0) {
      r = Error::sys("mount", errno, std::string(src) + " on " + tgt);
    }
    if (!r) return fail(r.error());
  }
  if (sysadm) {
    if (verbose) std::fprintf(stderr, "setting sysadm ambient capability\n");
    if (auto r = raise_sysadm(); !r) return fail(r.error());
  }
  if (newns || (cmd && cmd[0])) return exec_command(cmd, verbose);
  return 0;
}

}  // namespace vu::bindmount
