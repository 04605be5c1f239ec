// runtime/config.h — view files (`vu run -f view.toml`).
//
// A view file is TOML whose keys are exactly `vu run`'s long options (run_options()):
//
//   command  = ["sh", "-c", "hostname; ls /scratch"]   # the only key that is not an option
//   root     = true                                     # flags: booleans
//   hostname = "box"                                    # single options: strings
//   bind     = ["/tmp/r:/etc/resolv.conf", "/srv/data:/mnt:ro"]   # repeatable: arrays
//   tmpfs    = ["/scratch"]
//
// Mounts are applied in the order they appear in the file, across keys. Options given on the
// command line are applied after the file: single values override, repeatable ones append.
// Unknown keys and wrong types are errors that name the key, the file and the line.
#pragma once

#include <string>

#include "base/error.h"
#include "runtime/view_spec.h"

namespace vu {

Result<void> load_config_file(const std::string& path, ViewSpec* spec);
// Same, from text (for tests); `origin` names it in messages.
Result<void> load_config_text(std::string_view text, const std::string& origin, ViewSpec* spec);

}  // namespace vu
