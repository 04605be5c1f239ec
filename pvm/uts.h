// pvm/uts.h — the uts module: uname with the view's host name, sethostname under --root.
// Each handler answers one trapped call (see pvm/call.h for Call and Answer); dispatch() in
// pvm/monitor.cc picks the handler by system call number.
#pragma once

#include "pvm/call.h"

namespace vu::pvm {

Answer do_uname(const Config& cfg, Call& c);
Answer do_sethostname(Config& cfg, Call& c);

}  // namespace vu::pvm
