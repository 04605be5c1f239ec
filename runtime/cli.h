// runtime/cli.h — argv → what to do. The only reader of argv (compat commands have their own).
//
//   vu run [OPTIONS] [--] [CMD [ARGS…]]    options end at "--" or at the first word that is
//   vu shell [OPTIONS]                     not an option (as getopt's "+"), so CMD's own options
//   vu probe                               are never taken for vu's.
//   vu userbindmount …                     (compatible command; also when argv[0] is userbindmount)
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/net_attach.h"
#include "runtime/view_spec.h"

namespace vu {

struct Invocation {
  enum class Command { kRun, kShell, kProbe, kUserbindmount, kVersion, kHelpShown, kNetAttach,
                       kCreate, kEnter, kList, kRemove };
  Command command = Command::kRun;
  ViewSpec spec;
  bool explain = false;
  int verbosity = 0;  // -v count; -q gives -1
  std::string help;   // kHelpShown: the text to print (stdout, exit 0)
  AttachSpec attach;  // kNetAttach
  std::string container;              // kCreate, kEnter, kRemove: the name
  std::vector<std::string> arguments;  // kCreate: its options; kEnter: options and command
};

Result<Invocation> parse_args(int argc, char** argv);

// `vu --help` and `vu run --help` texts (for docs and tests).
std::string top_help();
std::string run_help();

}  // namespace vu
