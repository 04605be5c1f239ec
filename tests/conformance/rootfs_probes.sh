#!/usr/bin/env bash
# conformance/rootfs_probes.sh VU DENY_USERNS DEBIAN MUSL_PROBE — same spec, same view, either
# backend, with another root (--rootfs, issue 17): each probe runs under --backend=ns,
# --backend=pvm and with auto under the filter that denies user namespaces (vu picks pvm by
# itself); stdout, stderr less vu's own "vu:" lines and the status must be identical.
#   - a busybox tree (busybox-static): os-release, id, pwd, ls /, checks of the view that do not
#     read /proc/self (read-only root, private /tmp, /dev);
#   - a musl tree: musl's loader as /lib/ld-musl-x86_64.so.1, MUSL_PROBE (a musl-gcc build of
#     tests/helpers/rootfs_pvm_probe.c: dynamically linked, PT_INTERP musl's loader, which only
#     the tree has on pvm's path map) and busybox as /bin/sh: the program runs on both backends,
#     with pvm's fast path (a glibc library) kept out of it. MUSL_PROBE "skip:REASON": SKIP line;
#   - the Debian tree (DEBIAN: rootfs_run.sh's tarball, or "skip:REASON"): os-release, id, pwd,
#     ls /, and apt-get install of a local .deb into a --cow layer over the tree (--root).
# Run by rootfs_run.sh (which makes the Debian tree once) through run_as_user.sh.
set -u
VU=$1 DENY=$2 debian=${3:-skip:no Debian tree given} MUSL=${4:-skip:no musl probe given}
here=$(dirname "$0")
. "$here/harness.sh" 2>/dev/null || . "$here/../integration/harness.sh" || exit 1
if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
need_static_busybox
if ! "$VU" run --backend=ns --net none -- true 2>/dev/null; then
  echo "SKIP: the ns backend does not work here; nothing to compare pvm with"; exit 77
fi
if ! "$VU" run --backend=pvm --net none -- true 2>"$work/err"; then echo "SKIP: pvm does not work here: $(cat "$work/err")"; exit 77; fi
T="timeout -k 5 120"

# rprobe NAME VU-RUN-OPTIONS… -- COMMAND…: ns, pvm and auto-under-deny-userns print the same.
rprobe() {
  local name=$1; shift
  local o_ns o_pvm o_deny
  o_ns=$(cd "$HOME" && { $T "$VU" run --backend=ns "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
  o_pvm=$(cd "$HOME" && { $T "$VU" run --backend=pvm "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
  o_deny=$(cd "$HOME" && { $T "$DENY" "$VU" run "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
  if [ "$o_ns" = "$o_pvm" ] && [ "$o_ns" = "$o_deny" ]; then
    ok "$name ($(printf '%s' "$o_ns" | head -c 80 | tr '\n' '|'))"
  else
    bad "$name" "ns:  $(printf '%s' "$o_ns" | head -c 600)" "pvm: $(printf '%s' "$o_pvm" | head -c 600)" \
      "deny-userns: $(printf '%s' "$o_deny" | head -c 600)"
  fi
}
# The probes every tree gets; $1 names the tree, the rest are the vu options.
common_probes() {
  local t=$1; shift
  rprobe "$t: os-release" "$@" -- sh -c '. /etc/os-release; echo $ID'
  rprobe "$t: id" "$@" -- id
  rprobe "$t: --root id" "$@" --root -- id
  rprobe "$t: pwd (\$HOME kept)" "$@" -- pwd
  rprobe "$t: ls /" "$@" -- ls /
  # The view without /proc/self: the root read-only, /tmp private, /dev's nodes.
  rprobe "$t: read-only root, private /tmp, /dev" "$@" -- \
    sh -c 'touch /x 2>/dev/null; echo "root $?"; echo t > /tmp/t && ls /tmp; ls /dev | grep -E "^(null|zero|full|urandom|tty|shm|pts)$"; echo x > /dev/null && echo null ok'
  rprobe "$t: exit status" "$@" -- sh -c 'exit 3'
}

# --- busybox ----------------------------------------------------------------------------------
R=$work/busybox
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/dev" "$R/sys" "$R/tmp" "$R/root"
cp "$bb" "$R/bin/busybox"
for a in sh ls cat id pwd echo touch grep; do ln -s busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf 'NAME="vu test tree"\nID=vutest\n' > "$R/etc/os-release"
common_probes busybox --net none --rootfs "$R"

# --- musl: its loader only in the tree --------------------------------------------------------
if [ "${MUSL#skip:}" != "$MUSL" ]; then
  skipped "musl tree" "${MUSL#skip:}"
elif ! loader=$(readlink -f /lib/ld-musl-x86_64.so.1) || [ ! -f "$loader" ]; then
  skipped "musl tree" "no /lib/ld-musl-x86_64.so.1 (apt-get install musl-tools)"
else
  M=$work/musl
  mkdir -p "$M/bin" "$M/lib" "$M/etc" "$M/proc" "$M/dev" "$M/sys" "$M/tmp" "$M/root"
  cp "$bb" "$M/bin/busybox"
  for a in sh ls cat id pwd echo touch grep; do ln -s busybox "$M/bin/$a"; done
  cp "$loader" "$M/lib/ld-musl-x86_64.so.1"
  cp "$MUSL" "$M/bin/probe"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$M/etc/passwd"
  printf 'root:x:0:\n' > "$M/etc/group"
  printf 'NAME="vu musl tree"\nID=vumusl\n' > "$M/etc/os-release"
  common_probes musl --net none --rootfs "$M"
  rprobe "musl: a musl-dynamic program (argv, /proc/self/exe)" --net none --rootfs "$M" -- probe a 'b c'
  rprobe "musl: through sh and PATH" --net none --rootfs "$M" -- sh -c 'probe x; echo "status $?"'
  rprobe "musl: pvm's fast path (a glibc library) is not mapped into it" --net none --rootfs "$M" -- probe --preload
fi

# --- Debian -----------------------------------------------------------------------------------
if [ "${debian#skip:}" != "$debian" ]; then
  skipped "Debian tree" "${debian#skip:}"
else
  export XDG_CACHE_HOME=$work/cache
  (cd "$HOME" && $T "$VU" run --net none --rootfs "$debian" -- true)  # unpacked once, outside the comparisons
  common_probes debian --net none --rootfs "$debian"
  # apt-get install of a local .deb into a layer of each backend's own over the tree; the
  # sandbox user stays root (pvm gives no other ids: README). What the package then shows.
  mkdir -p "$work/pkg/DEBIAN" "$work/pkg/usr/bin" "$work/debs"
  printf 'Package: vu-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: vu <vu@localhost>\nDescription: vu test package\n' > "$work/pkg/DEBIAN/control"
  printf '#!/bin/sh\necho hello from a package\n' > "$work/pkg/usr/bin/vu-hello"
  chmod 755 "$work/pkg/usr/bin/vu-hello" "$work/debs"
  if dpkg-deb --root-owner-group --build "$work/pkg" "$work/debs/vu-hello_1.0_all.deb" >/dev/null 2>"$work/stderr"; then
    apt_run() {  # apt_run NAME [deny] BACKEND-OPTION…
      local n=$1; shift
      local pre=()
      if [ "$1" = deny ]; then pre=("$DENY"); shift; fi
      (cd "$HOME" && $T "${pre[@]}" "$VU" run "$@" --net none --rootfs "$debian" --root --cow "$work/layer-$n:/" \
         --bind "$work/debs:/mnt" -- apt-get -o APT::Sandbox::User=root install -y -q /mnt/vu-hello_1.0_all.deb \
         > "$work/apt-$n.log" 2>&1
       echo "install $?"
       $T "${pre[@]}" "$VU" run "$@" --net none --rootfs "$debian" --root --cow "$work/layer-$n:/" -- \
         sh -c 'vu-hello; dpkg-query -W -f "\${Status}\n" vu-hello; ls -l /usr/bin/vu-hello | cut -d" " -f1,3,4' 2>&1 | grep -v '^vu: ')
    }
    a_ns=$(apt_run ns --backend=ns) a_pvm=$(apt_run pvm --backend=pvm) a_deny=$(apt_run deny deny)
    if [ "$a_ns" = "$a_pvm" ] && [ "$a_ns" = "$a_deny" ] && [ "${a_ns%%$'\n'*}" = "install 0" ]; then
      ok "debian: apt-get install of a local .deb into a --cow layer ($(printf '%s' "$a_ns" | tr '\n' '|'))"
    else
      bad "debian: apt-get install" "ns: $a_ns" "pvm: $a_pvm" "deny-userns: $a_deny" "$(tail -5 "$work/apt-pvm.log")"
    fi
  else
    skipped "debian: apt-get install" "dpkg-deb could not build the package: $(cat "$work/stderr")"
  fi
fi
summary
