#include "runtime/containers.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "base/strings.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "bindmount/bindmount.h"
#include "runtime/cli.h"

namespace vu::containers {

namespace {

std::string base_dir() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg && xdg[0] == '/') return std::string(xdg) + "/vu/containers";
  const char* home = std::getenv("HOME");
  return std::string(home && home[0] == '/' ? home : "/tmp") + "/.local/share/vu/containers";
}

Result<void> mkdirs(const std::string& path) {
  for (size_t k = 1; k <= path.size(); ++k)
    if ((k == path.size() || path[k] == '/') && ::mkdir(path.substr(0, k).c_str(), 0700) < 0 && errno != EEXIST)
      return Error::sys("mkdir", errno, path.substr(0, k));
  return Ok{};
}

// TOML basic string.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}

// The create options as a view file: one key per option (`vu run -f` reads it back).
Result<std::string> to_view_file(const std::vector<std::string>& opts) {
  std::vector<std::pair<const OptionDef*, std::vector<std::string>>> keys;
  auto add = [&](const OptionDef* o, std::string v) {
    for (auto& [k, vals] : keys)
      if (k == o) return vals.push_back(std::move(v));
    keys.push_back({o, {std::move(v)}});
  };
  for (size_t i = 0; i < opts.size(); ++i) {
    std::string a = opts[i], value;
    const OptionDef* o = nullptr;
    if (str::starts_with(a, "--")) {
      size_t eq = a.find('=');
      o = find_option(a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2));
      if (o && eq != std::string::npos) value = a.substr(eq + 1);
    } else if (a.size() == 2 && a[0] == '-') {
      for (const OptionDef& d : run_options())
        if (d.short_name == a[1]) o = &d;
    }
    if (!o) return Error::usage("vu create: " + str::quote(a) + " is not a view option")
                 .hint("vu create NAME --rootfs TREE [OPTIONS of vu run]; a command is given to vu enter");
    if (o->is_flag) {
      add(o, "true");
      continue;
    }
    if (value.empty()) {
      if (i + 1 >= opts.size()) return Error::usage("vu create: " + a + " needs a value");
      value = opts[++i];
    }
    if (o->arity == 2) {
      if (i + 1 >= opts.size()) return Error::usage("vu create: " + a + " needs two values");
      value += '\0' + opts[++i];
    }
    // Host paths are kept absolute: enter runs from anywhere.
    if (std::string_view(o->name) == "rootfs") value = VU_TRY(bindmount::host_path(value));
    if (std::string_view(o->name) == "bind" || std::string_view(o->name) == "ro-bind")
      if (value[0] != '/') value = VU_TRY(bindmount::host_path(value));
    add(o, value);
  }
  std::string text = "# vu create: the view of this container (vu enter adds --cow layer:/)\n";
  for (auto& [o, vals] : keys) {
    text += std::string(o->name) + " = ";
    if (o->is_flag) {
      text += "true\n";
      continue;
    }
    auto one = [&](const std::string& v) {
      if (o->arity != 2) return quote(v);
      size_t z = v.find('\0');
      return "[" + quote(v.substr(0, z)) + ", " + quote(v.substr(z + 1)) + "]";
    };
    if (!o->repeatable) {
      text += one(vals.back()) + "\n";
      continue;
    }
    text += "[";
    for (size_t k = 0; k < vals.size(); ++k) text += (k ? ", " : "") + one(vals[k]);
    text += "]\n";
  }
  return text;
}

uint64_t tree_bytes(const std::string& path) {
  static uint64_t total;
  total = 0;
  ::nftw(path.c_str(), [](const char*, const struct stat* st, int, struct FTW*) {
    total += static_cast<uint64_t>(st->st_blocks) * 512;
    return 0;
  }, 16, FTW_PHYS);
  return total;
}


}  // namespace

Result<std::string> dir_of(const std::string& name) {
  bool good = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name) good &= std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  if (!good)
    return Error::usage("container name " + str::quote(name) + ": use letters, digits, '.', '_' and '-' (at most 64, not first '.')");
  return base_dir() + "/" + name;
}

Result<int> create(const std::string& name, const std::vector<std::string>& options) {
  const std::string dir = VU_TRY(dir_of(name));
  // Checked as vu run checks it (parse, then finalize: the tree exists, has /bin/sh, …).
  std::vector<std::string> args{"vu", "run"};
  args.insert(args.end(), options.begin(), options.end());
  args.push_back("--");
  args.push_back("true");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  Invocation inv = VU_TRY(parse_args(static_cast<int>(argv.size()), argv.data()));
  if (!inv.spec.rootfs)
    return Error::usage("vu create " + name + ": a container needs --rootfs TREE|ARCHIVE")
        .hint("e.g. vu create dev --rootfs ./debian-rootfs --root");
  VU_TRY_VOID(finalize(inv.spec));
  std::string text = VU_TRY(to_view_file(options));
  VU_TRY_VOID(mkdirs(base_dir()));
  if (::mkdir(dir.c_str(), 0700) < 0) {
    if (errno == EEXIST)
      return Error::usage("container " + name + " exists already").hint("vu enter " + name + ", or vu rm " + name + " first");
    return Error::sys("mkdir", errno, dir);
  }
  UniqueFd fd(::open((dir + "/view.toml").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("create", errno, dir + "/view.toml");
  VU_TRY_VOID(sys::write_all(fd.get(), text, dir + "/view.toml"));
  std::printf("created %s (%s)\n", name.c_str(), dir.c_str());
  return 0;
}

Result<std::vector<std::string>> enter_argv(const std::string& name, const std::vector<std::string>& rest, int* lock_fd) {
  const std::string dir = VU_TRY(dir_of(name));
  UniqueFd lock(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!lock) {
    if (errno == ENOENT) return Error::usage("no container " + str::quote(name)).hint("'vu ls' lists them; 'vu create' makes one");
    return Error::sys("open", errno, dir);
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) < 0)
    return Error::make(ErrorKind::kSetup, "container " + name + " is in use by another 'vu enter'")
        .hint("one view at a time writes a container's layer (two overlayfs mounts of one layer would "
              "corrupt it); run the second command from the first view, or wait for it to end");
  ::utimensat(AT_FDCWD, (dir + "/last-used").c_str(), nullptr, 0);
  UniqueFd stamp(::open((dir + "/last-used").c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  ::futimens(stamp.get(), nullptr);
  std::vector<std::string> argv{"vu", "run", "-f", dir + "/view.toml", "--cow", dir + "/layer:/"};
  argv.insert(argv.end(), rest.begin(), rest.end());
  *lock_fd = lock.release();
  return argv;
}

Result<int> list() {
  const std::string base = base_dir();
  std::printf("%-20s %-40s %10s  %s\n", "NAME", "ROOT TREE", "LAYER", "LAST USED");
  DIR* d = ::opendir(base.c_str());
  if (!d) return 0;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string dir = base + "/" + n;
    std::string tree = "?";
    auto text = sys::read_file(dir + "/view.toml", 1 << 20);
    if (text) {
      toml::parse_result t = toml::parse(*text);
      if (t) tree = t.table()["rootfs"].value_or(std::string("?"));
    }
    char size[32], when[32] = "never";
    double mib = static_cast<double>(tree_bytes(dir + "/layer")) / (1 << 20);
    std::snprintf(size, sizeof size, "%.1f MiB", mib);
    struct stat st;
    if (::stat((dir + "/last-used").c_str(), &st) == 0) {
      struct tm tm;
      ::localtime_r(&st.st_mtime, &tm);
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    }
    std::printf("%-20s %-40s %10s  %s\n", n.c_str(), tree.c_str(), size, when);
  }
  return 0;
}

Result<int> remove(const std::string& name) {
  const std::string dir = VU_TRY(dir_of(name));
  UniqueFd lock(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!lock) return Error::usage("no container " + str::quote(name)).hint("'vu ls' lists them");
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) < 0)
    return Error::make(ErrorKind::kSetup, "container " + name + " is in use by a 'vu enter'").hint("end that view first");
  remove_tree(dir);
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0)
    return Error::make(ErrorKind::kSetup, "vu rm " + name + ": some files of " + dir + " could not be removed")
        .hint("files of subordinate ids (made under --map-users) can be removed from a view that maps them: "
              "vu run --root --map-users --net none --bind " + dir + ":/mnt -- rm -rf /mnt/layer");
  std::printf("removed %s\n", name.c_str());
  return 0;
}

}  // namespace vu::containers
