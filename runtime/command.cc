#include "runtime/command.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/raw_log.h"
#include "base/strings.h"

extern char** environ;

namespace vu {

namespace {
std::string get_cwd() {
  char buf[4096];
  return ::getcwd(buf, sizeof buf) ? std::string(buf) : std::string("/");
}

// The command's environment: ours, less --unsetenv, plus --setenv (later wins).
std::vector<std::string> make_env(const ViewSpec& spec) {
  std::vector<std::string> env;
  auto removed = [&](std::string_view name) {
    for (const std::string& u : spec.unsetenv)
      if (u == name) return true;
    for (const auto& [k, v] : spec.setenv)
      if (k == name) return true;
    return false;
  };
  for (char** e = environ; *e; ++e) {
    std::string_view kv = *e;
    if (!removed(kv.substr(0, kv.find('=')))) env.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.setenv) {
    std::erase_if(env, [&](const std::string& s) { return s.compare(0, k.size() + 1, k + "=") == 0; });
    env.push_back(k + "=" + v);
  }
  return env;
}

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& kv : env)
    if (kv.size() > name.size() && kv.compare(0, name.size(), name) == 0 && kv[name.size()] == '=')
      return kv.substr(name.size() + 1);
  return {};
}
}  // namespace

Command prepare_command(const ViewSpec& spec) {
  Command c;
  c.cwd = spec.chdir.value_or(get_cwd());
  c.cwd_required = spec.chdir.has_value();
  c.env = make_env(spec);
  for (std::string& e : c.env) c.envp.push_back(e.data());
  c.envp.push_back(nullptr);
  c.args = spec.command;
  if (c.args.empty()) {
    std::string shell = env_value(c.env, "SHELL");
    c.args.push_back(shell.empty() ? "/bin/sh" : shell);
  }
  for (std::string& a : c.args) c.argv.push_back(a.data());
  c.argv.push_back(nullptr);
  static char kSh[] = "/bin/sh";
  c.sh_argv.push_back(kSh);
  c.sh_argv.push_back(nullptr);  // the script's path, filled in by the child
  for (size_t i = 1; i < c.args.size(); ++i) c.sh_argv.push_back(c.args[i].data());
  c.sh_argv.push_back(nullptr);
  if (!std::strchr(c.args[0].c_str(), '/')) {
    std::string path = env_value(c.env, "PATH");
    if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
    for (std::string& d : str::split(path, ':')) c.path_dirs.push_back(d.empty() ? "." : d);
  }
  return c;
}

int enter_cwd(const Command& c) {
  if (::chdir(c.cwd.c_str()) == 0) return 0;
  if (c.cwd_required) return errno;
  raw::write_str(2, "vu: warning: ", c.cwd.c_str(), " is not reachable in the view; starting in /\n");
  return ::chdir("/") == 0 ? 0 : errno;
}

Error chdir_error(const Command& c, int err) {
  return Error::sys("chdir", err, c.cwd).context("--chdir").kind(ErrorKind::kSetup);
}

int exec_command(Command& c) {
  char* const* envp = c.envp.data();
  if (c.path_dirs.empty()) {
    ::execve(c.argv[0], c.argv.data(), envp);
    int err = errno;
    if (err == ENOEXEC) {
      c.sh_argv[1] = c.argv[0];
      ::execve("/bin/sh", c.sh_argv.data(), envp);
    }
    return err;
  }
  char buf[4096];
  int saved = ENOENT;
  size_t name_len = std::strlen(c.argv[0]);
  for (const std::string& dir : c.path_dirs) {
    if (dir.size() + 1 + name_len + 1 > sizeof buf) continue;
    std::memcpy(buf, dir.data(), dir.size());
    buf[dir.size()] = '/';
    std::memcpy(buf + dir.size() + 1, c.argv[0], name_len + 1);
    ::execve(buf, c.argv.data(), envp);
    switch (errno) {
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
        continue;
      case EACCES:
        // A file we may not execute (not a directory we may not search) decides the error.
        if (::access(buf, F_OK) == 0) saved = EACCES;
        continue;
      case ENOEXEC:
        c.sh_argv[1] = buf;
        ::execve("/bin/sh", c.sh_argv.data(), envp);
        return ENOEXEC;
      default:
        return errno;
    }
  }
  return saved;
}

Error exec_error(const Command& c, int err) {
  const std::string& cmd = c.args[0];
  if (err == ENOENT)
    return Error::make(ErrorKind::kNotFound, str::quote(cmd) + ": command not found" +
                                                 (c.path_dirs.empty() ? "" : " in the view's PATH"));
  return Error::sys("execute", err, str::quote(cmd), ErrorKind::kNoExec);
}

}  // namespace vu
