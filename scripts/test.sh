#!/usr/bin/env bash
# vu — build and run every test: GoogleTest units and the CLI scenarios, which run vu as an
# unprivileged user (created by scripts/setup.sh --test-env when this runs as root).
#   scripts/test.sh [ctest args…]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps
if [ "$(id -u)" = 0 ]; then scripts/setup.sh --test-env; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
ctest --test-dir build --output-on-failure "$@"
