#include "runtime/config.h"

#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/strings.h"
#include "base/unique_fd.h"

namespace vu {

namespace {

// A view file is a few lines of TOML; anything larger is a wrong path (-f /dev/zero).
constexpr size_t kMaxViewFile = 1 << 20;

std::string where(const std::string& origin, const toml::node& n) {
  return origin + ":" + std::to_string(n.source().begin.line);
}

Result<std::string> as_string(const std::string& origin, std::string_view key,
                              const toml::node& n) {
  if (auto s = n.value<std::string>()) {
    // toml's \u0000 would silently cut the value where the kernel reads it.
    if (s->find('\0') != std::string::npos)
      return Error::usage(where(origin, n) + ": '" + std::string(key) + "' contains a NUL character (\\u0000)")
          .hint("paths, names and arguments cannot contain NUL; remove it");
    return *s;
  }
  return Error::usage(where(origin, n) + ": '" + std::string(key) + "' expects a string");
}

Result<void> apply_key(const std::string& origin, std::string_view key, const toml::node& n,
                       ViewSpec* spec) {
  if (key == "command") {
    const toml::array* a = n.as_array();
    if (!a || a->empty())
      return Error::usage(where(origin, n) +
                          ": 'command' expects a non-empty array of strings, e.g. [\"sh\", \"-c\", \"id\"]");
    spec->command.clear();
    for (const toml::node& e : *a) spec->command.push_back(VU_TRY(as_string(origin, key, e)));
    return Ok{};
  }
  const OptionDef* opt = find_option(key);
  if (!opt) {
    std::vector<std::string> names{"command"};
    for (const OptionDef& o : run_options()) names.emplace_back(o.name);
    return Error::usage(where(origin, n) + ": unknown key '" + std::string(key) + "'")
        .hint("known keys: " + str::join(names, ", "));
  }
  auto apply = [&](const std::string& v) -> Result<void> {
    auto r = opt->apply(*spec, v);
    if (!r) return std::move(r).error().context(where(origin, n));
    return Ok{};
  };
  if (opt->is_flag) {
    auto b = n.value<bool>();
    if (!b) return Error::usage(where(origin, n) + ": '" + std::string(key) + "' expects true or false");
    return apply(*b ? "true" : "false");
  }
  if (const toml::array* a = n.as_array()) {
    if (!opt->repeatable)
      return Error::usage(where(origin, n) + ": '" + std::string(key) +
                          "' takes one value, not an array");
    if (opt->arity == 2) {
      // One use: ["CMD", "DIR"]; several: [["CMD", "DIR"], …].
      auto pair = [&](const toml::array& p) -> Result<void> {
        if (p.size() != 2)
          return Error::usage(where(origin, n) + ": '" + std::string(key) + "' expects [\"CMD\", \"DIR\"]");
        return apply(VU_TRY(as_string(origin, key, p[0])) + '\0' + VU_TRY(as_string(origin, key, p[1])));
      };
      if (!a->empty() && !(*a)[0].as_array()) return pair(*a);
      for (const toml::node& e : *a) {
        if (!e.as_array()) return Error::usage(where(origin, e) + ": '" + std::string(key) + "' expects [CMD, DIR] pairs");
        VU_TRY_VOID(pair(*e.as_array()));
      }
      return Ok{};
    }
    for (const toml::node& e : *a) VU_TRY_VOID(apply(VU_TRY(as_string(origin, key, e))));
    return Ok{};
  }
  return apply(VU_TRY(as_string(origin, key, n)));
}

}  // namespace

Result<void> load_config_text(std::string_view text, const std::string& origin, ViewSpec* spec) {
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) {
    const toml::parse_error& e = parsed.error();
    return Error::usage(origin + ":" + std::to_string(e.source().begin.line) + ":" +
                        std::to_string(e.source().begin.column) + ": malformed view file: " +
                        std::string(e.description()));
  }
  const toml::table& tbl = parsed.table();
  // Document order, so mounts keep the order the file gives them in.
  std::vector<std::pair<std::string_view, const toml::node*>> keys;
  for (auto&& [k, v] : tbl) keys.emplace_back(k.str(), &v);
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return a.second->source().begin < b.second->source().begin;
  });
  for (auto& [k, v] : keys) VU_TRY_VOID(apply_key(origin, k, *v, spec));
  return Ok{};
}

Result<void> load_config_file(const std::string& path, ViewSpec* spec) {
  auto text = sys::read_file(path, kMaxViewFile);
  if (!text && text.error().err() == EFBIG)
    return Error::usage("view file " + path + " is larger than " + std::to_string(kMaxViewFile >> 10) + " KiB")
        .hint("a view file is a short TOML text; check the path given to -f");
  if (!text) return Error::sys("view file", text.error().err(), path, ErrorKind::kUsage);
  return load_config_text(*text, path, spec);
}

}  // namespace vu
