// runtime/command.h — the command a view runs, prepared before the clone and executed after it
// without allocating. Shared by the ns and pvm backends.
//
//   Command cmd = prepare_command(spec);     // parent: argv, envp, PATH list, cwd
//   …child: enter_cwd(cmd); int err = exec_command(cmd);   // errno on failure
//   …parent: Error e = exec_error(cmd, err); // "'foo': command not found in the view's PATH"
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/view_spec.h"

namespace vu {

struct Command {
  std::vector<std::string> args;       // the command ($SHELL, else /bin/sh, when none was given)
  std::vector<char*> argv;             // into args, NULL-terminated
  std::vector<char*> sh_argv;          // {"/bin/sh", <path>, args[1..]…, NULL} for ENOEXEC scripts
  std::vector<std::string> env;        // ours, less --unsetenv, plus --setenv
  std::vector<char*> envp;
  std::vector<std::string> path_dirs;  // empty when argv[0] contains '/'
  std::string cwd;                     // --chdir, else the caller's cwd
  bool cwd_required = false;           // --chdir was given: failing to enter it is an error
};

Command prepare_command(const ViewSpec& spec);
// Enters the working directory: the requested one, else the caller's, else / with a warning.
// Async-signal-safe. Returns 0, or errno when --chdir was given and cannot be entered.
int enter_cwd(const Command& c);
// The error for enter_cwd's errno.
Error chdir_error(const Command& c, int err);
// execvpe without allocation (PATH was split by prepare_command); a file without #! runs under
// /bin/sh. Async-signal-safe. Returns errno when nothing could be executed.
int exec_command(Command& c);
// The error for exec_command's errno: "command not found" (127) or "cannot execute" (126).
Error exec_error(const Command& c, int err);

}  // namespace vu
