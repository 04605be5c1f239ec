// base/log.h — the ordinary logger for the supervisor side (allocates; not for post-clone code).
//
//   vu::log::set_level(vu::log::Level::kDebug);   // from -v, or VU_LOG=debug
//   VU_LOG_DEBUG("bind " << src << " -> " << dst);
//
// Messages go to stderr prefixed "vu: ". Not thread-safe beyond what one write(2) per message gives.
#pragma once

#include <sstream>
#include <string>

namespace vu::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_level(Level l);
Level level();
// Reads VU_LOG=error|warn|info|debug, if set.
void init_from_env();
void emit(Level l, const std::string& msg);

}  // namespace vu::log

#define VU_LOG_AT(lvl, expr)                                        \
  do {                                                              \
    if (::vu::log::level() >= (lvl)) {                              \
      std::ostringstream vu_log_os_;                                \
      vu_log_os_ << expr;                                           \
      ::vu::log::emit((lvl), vu_log_os_.str());                     \
    }                                                               \
  } while (0)
#define VU_LOG_ERROR(expr) VU_LOG_AT(::vu::log::Level::kError, expr)
#define VU_LOG_WARN(expr) VU_LOG_AT(::vu::log::Level::kWarn, expr)
#define VU_LOG_INFO(expr) VU_LOG_AT(::vu::log::Level::kInfo, expr)
#define VU_LOG_DEBUG(expr) VU_LOG_AT(::vu::log::Level::kDebug, expr)
