// bindmount/userbindmount.h — the userbindmount-compatible command.
//
//   userbindmount [-n|--newns] [-s|--sysadm] [-v|--verbose] [SRC TGT ...] [-- [CMD [ARGS]]]
//
// Same arguments and behaviour as VirtualSquare's userbindmount 0.1 (see
// shared/reference/originals.md §7): a user+mount namespace is created in-process when -n or
// "--" is given (own uid/gid mapped to themselves, setgroups deny); each pair is bind-mounted
// (SRC "-" or "" = contents of stdin, SRC "\"text\"" = the literal text, written to a 0600
// temporary file that is unlinked once mounted); -s raises CAP_SYS_ADMIN as an ambient
// capability; then CMD (default $SHELL) is executed when a namespace was created or a command
// was given.
// Divergences (the original's bugs): a failed exec exits 127/126 instead of 0, a usage error
// (odd number of paths) exits 2, a failed bind of a text/stdin source is reported instead of
// ignored.
#pragma once

namespace vu::bindmount {

// Runs the command; returns the exit status (only on failure: on success it execs).
int userbindmount_main(int argc, char** argv);

}  // namespace vu::bindmount
