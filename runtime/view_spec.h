// runtime/view_spec.h — the description of a view, as plain data.
//
// The CLI (cli.h) and the config file (config.h) both fill a ViewSpec through the same option
// table, run_options(): one name, one parser, one help text per option, so `--bind X` and
// `bind = ["X"]` cannot drift apart. Nothing after this point reads argv or files.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "bindmount/bindmount.h"
#include "fusefs/fusefs.h"
#include "userns/userns.h"
#include "vdens/net_spec.h"

namespace vu {

enum class BackendWish { kAuto, kNs, kPvm };

struct ViewSpec {
  std::vector<std::string> command;  // empty: $SHELL
  std::vector<std::pair<std::string, std::string>> setenv;
  std::vector<std::string> unsetenv;
  std::optional<std::string> chdir;  // default: the caller's cwd (or / if it is not in the view)
  userns::Identity identity = userns::Identity::kKeep;
  bool map_users = false;  // subordinate ids through newuidmap/newgidmap
  // The caller's uid/gid inside the view when it is neither its own nor root: an OCI image's
  // User (runtime/rootfs.cc). Unset: identity decides (kKeep own ids, kRoot 0).
  std::optional<std::pair<uint32_t, uint32_t>> view_ids;
  std::vector<bindmount::MountSpec> mounts;  // applied in order
  std::vector<fusefs::CowSpec> cows;          // after the mounts (finalize() picks kernel or FUSE)
  std::vector<fusefs::FuseMount> fuse;        // after the copy-on-write layers, in order
  std::optional<std::string> hostname;
  uint64_t ambient_caps = 0;  // capability bits raised as ambient for the command (--cap)
  vdens::NetSpec net;  // default: host
  BackendWish backend = BackendWish::kAuto;
  std::optional<std::string> rootfs;  // --rootfs: the view's / (runtime/rootfs.h)
  bool rootfs_home = true;            // bind $HOME into it (--no-home: not)
  std::optional<fusefs::CowSpec> rootfs_layer;  // --cow LAYER:/ with --rootfs: the tree writable
};

// One option of `vu run`, and the key of the same name in a config file.
struct OptionDef {
  const char* name;  // long option without "--"; config key
  char short_name;   // 0: none
  bool is_flag;      // flags take no value on the command line; true/false in a config file
  bool repeatable;   // may be given more than once (config file: an array)
  const char* value_name;
  const char* help;
  Result<void> (*apply)(ViewSpec& spec, std::string_view value);
  int arity = 1;  // values per use; 2: apply() gets them joined by '\0' (config: ["a", "b"])
};

std::span<const OptionDef> run_options();
const OptionDef* find_option(std::string_view name);

// Checks that need all the input, or the host (bind sources exist, options that need each
// other), and fills defaults that depend on several options (slirp addresses). Run once, last.
Result<void> finalize(ViewSpec& spec);

std::string_view to_string(BackendWish b);

}  // namespace vu
