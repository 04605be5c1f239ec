// tests/unit/pvm_self_call.h — a pvm Call made by the test process itself (its memory is the
// "caller's"), for the unit tests of the monitor's modules (pvm_test.cc, cow_test.cc).
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>

#include "pvm/call.h"

namespace vu::pvm::testing {

inline Call self_call(int nr, std::initializer_list<uint64_t> args) {
  Call c{0, static_cast<pid_t>(::syscall(SYS_gettid)), nr, {}};
  int i = 0;
  for (uint64_t a : args) c.a[i++] = a;
  return c;
}
inline uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

}  // namespace vu::pvm::testing
