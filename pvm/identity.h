// pvm/identity.h — the identity module: getgroups as in an unmapped user namespace, --root ids.
// Each handler answers one trapped call (see pvm/call.h for Call and Answer); dispatch() in
// pvm/monitor.cc picks the handler by system call number.
#pragma once

#include "pvm/call.h"

namespace vu::pvm {

Answer do_getgroups(const Config& cfg, Call& c);
Answer do_root_ids(const Config& cfg, Call& c);

}  // namespace vu::pvm
