// vdens/uplink_open.h — opening one VDE uplink in vu-net, with a bound and a clear error.
//
//   VDECONN* c = VU_TRY(vu::vdens::open_vde("vde:///tmp/sw", kControlFd));
//
// vde_open() has no timeout: vde_switch, out of ports, accepts the connection and never answers
// it, and a full listen backlog blocks connect(). open_vde() arms a SIGALRM (no SA_RESTART) for
// `timeout_ms` so that the plugin's blocked call fails with EINTR; a plugin that retries is cut
// short a second later by the handler itself, which answers "E<message>" on `answer_fd` and
// exits. vu-net gives all its uplinks kOpenTimeoutMs together (each at least 100 ms): the view's
// first process waits 10 s for the answer.
// For the VNLs that make a directory (switch://, hub://, multi://, bonding://: libvdeplug's
// netnode plugins, which mkdir it and fail with EEXIST), a directory left by an owner that is
// gone (its ctl socket refuses connections) is removed first; a live one is a clear error.
// Call from vu-net's main thread only (it owns SIGALRM while opening).
#pragma once

#include <string>

#include "base/error.h"

struct vdeconn;

namespace vu::vdens {

inline constexpr int kOpenTimeoutMs = 3000;

// `answer_fd`: where the hard timeout answers (-1: nowhere).
Result<struct vdeconn*> open_vde(const std::string& vnl, int answer_fd, int timeout_ms = kOpenTimeoutMs);

// The directory a netnode VNL (switch://PATH[…], hub://…) makes (the plugin's default,
// /tmp/vdenode_USER, for an empty PATH), "" for other VNLs.
std::string node_dir(const std::string& vnl);

}  // namespace vu::vdens
