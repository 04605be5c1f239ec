#include "base/log.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace vu::log {
namespace {
Level g_level = Level::kWarn;  // the only mutable global of base/: set once by main
}

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

void init_from_env() {
  const char* v = std::getenv("VU_LOG");
  if (!v) return;
  if (!std::strcmp(v, "error")) g_level = Level::kError;
  if (!std::strcmp(v, "warn")) g_level = Level::kWarn;
  if (!std::strcmp(v, "info")) g_level = Level::kInfo;
  if (!std::strcmp(v, "debug")) g_level = Level::kDebug;
}

void emit(Level l, const std::string& msg) {
  static const char* const kPrefix[] = {"vu: error: ", "vu: warning: ", "vu: ", "vu: debug: "};
  std::string line = kPrefix[static_cast<int>(l)] + msg + "\n";
  (void)!::write(2, line.data(), line.size());
}

}  // namespace vu::log
