// runtime/vdens_cmd.h — the vdens-compatible command line, turned into a ViewSpec.
//
//   vu vdens [OPTIONS] [VNL [CMD [ARGS…]]]
//   vu vdens -m|--multi [OPTIONS] VNL [VNL …] [-- CMD [ARGS…]]
//   (also when vu is invoked as "vdens")
//
// Same options as VirtualSquare's vdens 0.2 (shared/reference/originals.md §1): -i PFX, -r FILE,
// -R ADDRS, -H NAME, -s, -c/-u (accepted, no effect: vu always clones), VDE_RESOLVCONF and
// VDE_RESOLVADDR as defaults; VNL "", "-", "no" = no interface, "=CMD" = cmd://CMD. The view is
// vdens's: own uid kept, private net/uts/mount namespaces, taps PFX0… and lo left DOWN and
// unaddressed, ambient CAP_NET_ADMIN, NET_RAW, NET_BIND_SERVICE, NET_BROADCAST (+SYS_ADMIN -s).
// Divergences (the original's bugs): the command's exit status is returned (vdens exits 0 with
// a network), a failed uplink or tap stops before the command runs, --help exits 0.
#pragma once

#include "base/error.h"
#include "runtime/cli.h"

namespace vu {

Result<Invocation> parse_vdens(int argc, char** argv);

}  // namespace vu
