// runtime/containers.h — named, persistent views over a root tree (developer containers).
//
//   vu create NAME --rootfs TREE|ARCHIVE [RUN-OPTIONS]   a view file and an empty layer
//   vu enter NAME [RUN-OPTIONS] [-- CMD]                 vu run -f VIEW --cow LAYER:/ …
//   vu ls                                                name, root tree, layer size, last use
//   vu rm NAME
//
// Each lives in $XDG_DATA_HOME/vu/containers/NAME (else ~/.local/share/vu/containers/NAME):
// view.toml (the create options, as `vu run -f` reads them), layer/ (the tree's changes, in
// overlayfs's format), last-used. `vu enter` holds an flock on the directory while its view
// runs: a second enter of the same container is refused with a clear error (two overlayfs
// mounts of one upper directory would corrupt it).
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace vu::containers {

// The directory of container NAME (checked: letters, digits, '.', '_', '-', not first '.').
Result<std::string> dir_of(const std::string& name);

// vu create: validates the options as `vu run` would (a --rootfs is required) and writes them.
Result<int> create(const std::string& name, const std::vector<std::string>& options);
// vu enter: the argv of the `vu run` that enters NAME (options and command appended), and the
// lock held while it runs (an fd; close it to release).
Result<std::vector<std::string>> enter_argv(const std::string& name, const std::vector<std::string>& rest, int* lock_fd);
Result<int> list();
Result<int> remove(const std::string& name);

}  // namespace vu::containers
