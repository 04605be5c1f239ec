// pvm/net.h — the unix-socket module: bind/connect/sendto/sendmsg to a path of the view, and
// getsockname/getpeername in view terms.
// Each handler answers one trapped call (see pvm/call.h for Call and Answer); dispatch() in
// pvm/monitor.cc picks the handler by system call number.
#pragma once

#include "pvm/call.h"

namespace vu::pvm {

Answer do_sockaddr(const Config& cfg, Call& c);
Answer do_sockname(const Config& cfg, Call& c);
Answer do_send(const Config& cfg, Call& c);

}  // namespace vu::pvm

namespace vu::pvm {
// The view's own network (pvm/inet.h): socket calls on IP sockets and the rtnetlink stand-ins.
// False: not a call of that module (a unix socket…): the handlers above take it.
bool do_inet(const Config& cfg, Call& c, Answer* out);
// VDE networks (pvm/vstack.h): the view's IP sockets served by vu-vstack. False: not one of them.
bool do_vstack(const Config& cfg, Call& c, Answer* out);
// Its filter rules (a scmp_filter_ctx): 0 or -errno.
int add_vstack_rules(void* ctx);
}  // namespace vu::pvm
