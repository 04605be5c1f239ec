// runtime/exit_codes.h — what vu's exit status means. One place; documented in `vu --help`
// and the README.
//
//   0–124    the command's own exit status
//   128+N    the command was killed by signal N
//   2        usage: bad option or value, malformed config file, bind source missing
//   125      the view could not be set up (namespace refused, mount failed, id map refused)
//   126      the command exists but could not be executed
//   127      the command was not found in the view
// A command may itself exit 2 or 125–127; when the status comes from vu, vu has printed a line
// starting "vu:" on stderr.
#pragma once

#include "base/error.h"

namespace vu {

inline constexpr int kExitUsage = 2;
inline constexpr int kExitSetup = 125;
inline constexpr int kExitNoExec = 126;
inline constexpr int kExitNotFound = 127;

inline int exit_status_for(ErrorKind k) {
  switch (k) {
    case ErrorKind::kUsage: return kExitUsage;
    case ErrorKind::kNotFound: return kExitNotFound;
    case ErrorKind::kNoExec: return kExitNoExec;
    case ErrorKind::kSetup:
    case ErrorKind::kDenied: return kExitSetup;
  }
  return kExitSetup;
}

}  // namespace vu
