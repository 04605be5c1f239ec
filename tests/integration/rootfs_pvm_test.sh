#!/usr/bin/env bash
# rootfs_pvm_test.sh VU DENY_USERNS DEBIAN PROBE — --rootfs on the pvm backend (issue 17): the
# same transcript under --backend=ns, --backend=pvm and with auto under the filter that denies
# user namespaces (vu picks pvm by itself) must print the same, on a busybox tree made here and
# on the Debian tree rootfs_run.sh makes (DEBIAN: its tarball, or "skip:REASON").
# PROBE (tests/helpers/rootfs_pvm_probe.c) is dynamically linked with the loader /vu-lib/ld.so,
# which only the tree has: it runs on pvm only when execve goes through the tree's own loader.
set -u
VU=$1 DENY=$2 debian=${3:-skip:no Debian tree given} PROBE=${4:-}
here=$(dirname "$0")
. "$here/harness.sh" || exit 1
if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
need_static_busybox
if ! "$VU" run --backend=pvm --net none -- true 2>"$work/err"; then echo "SKIP: pvm does not work here: $(cat "$work/err")"; exit 77; fi
have_ns=1
"$VU" run --backend=ns --net none -- true 2>/dev/null || have_ns=0
[ $have_ns = 0 ] && echo "note: the ns backend does not work here; pvm and auto under deny-userns are compared"
T="timeout -k 5 120"

# rprobe NAME VU-RUN-OPTIONS… -- COMMAND…: ns, pvm and auto-under-deny-userns print the same
# (stdout, stderr minus vu's own lines, status); run from $HOME.
rprobe() {
  local name=$1; shift
  local out_ns out_pvm out_deny rc_ns rc_pvm rc_deny
  # "status N" is the last line (grep's own status is not the command's).
  out_pvm=$(cd "$HOME" && { $T "$VU" run --backend=pvm "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
  out_deny=$(cd "$HOME" && { $T "$DENY" "$VU" run "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
  rc_pvm=${out_pvm##*status } rc_deny=${out_deny##*status }
  out_pvm=${out_pvm%status *} out_deny=${out_deny%status *}
  if [ $have_ns = 1 ]; then
    out_ns=$(cd "$HOME" && { $T "$VU" run --backend=ns "$@" 2>&1; echo "status $?"; } | grep -v '^vu: ')
    rc_ns=${out_ns##*status } out_ns=${out_ns%status *}
  else
    out_ns=$out_pvm rc_ns=$rc_pvm
  fi
  if [ "$out_ns" = "$out_pvm" ] && [ "$out_ns" = "$out_deny" ] && [ $rc_ns = $rc_pvm ] && [ $rc_ns = $rc_deny ] &&
     [ -n "$rc_ns" ]; then
    ok "$name ($(printf '%s' "$out_ns" | head -c 80 | tr '\n' '|'), status $rc_ns)"
  else
    bad "$name" "ns  (status $rc_ns): $(printf '%s' "$out_ns" | head -c 600)" \
      "pvm (status $rc_pvm): $(printf '%s' "$out_pvm" | head -c 600)" \
      "deny-userns (status $rc_deny): $(printf '%s' "$out_deny" | head -c 600)"
  fi
}

# --- a busybox tree, with a loader only it has -------------------------------------------------
R=$work/tree
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/dev" "$R/sys" "$R/tmp" "$R/root" "$R/srv/work" "$R/vu-lib" \
  "$R/lib/x86_64-linux-gnu"
cp "$bb" "$R/bin/busybox"
for a in sh ls cat id pwd echo readlink wc head env stat grep; do ln -s busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf 'NAME="vu test tree"\nID=vutest\n' > "$R/etc/os-release"
printf '#!/bin/sh\necho "script $0 $*"\n' > "$R/srv/work/hello.sh"
printf 'echo not executable\n' > "$R/srv/work/noexec.sh"
chmod 755 "$R/srv/work/hello.sh"
if [ -n "$PROBE" ] && [ -x "$PROBE" ]; then
  libc=$(ldd /bin/true | awk '/libc.so.6/ { print $3 }')
  cp "$PROBE" "$R/bin/probe" && cp "$(readlink -f /lib64/ld-linux-x86-64.so.2)" "$R/vu-lib/ld.so" &&
    cp "$(readlink -f "$libc")" "$R/lib/x86_64-linux-gnu/libc.so.6"
  # The same program with a loader the tree lacks (the name patched in place, same length).
  LC_ALL=C sed 's#/vu-lib/ld\.so#/vu-lib/no\.so#' "$PROBE" > "$R/bin/probe-noloader" && chmod 755 "$R/bin/probe-noloader"
  printf '#!/bin/probe from-shebang\n' > "$R/srv/work/probe.sh"
  chmod 755 "$R/srv/work/probe.sh"
fi

tree_sum=$(find "$R" -printf '%p %s %m\n' | sort | md5sum)
B=(--net none --rootfs "$R")
rprobe "busybox: os-release" "${B[@]}" -- sh -c '. /etc/os-release; echo $ID'
rprobe "busybox: id" "${B[@]}" -- id
rprobe "busybox: --root id" "${B[@]}" --root -- id
rprobe "busybox: pwd kept (\$HOME)" "${B[@]}" -- pwd
rprobe "busybox: --chdir" "${B[@]}" --chdir /srv/work -- sh -c 'pwd; ls'
rprobe "busybox: ls /" "${B[@]}" -- ls /
rprobe "busybox: ls /dev" "${B[@]}" -- ls /dev
rprobe "busybox: /etc/passwd with the caller added" "${B[@]}" -- cat /etc/passwd
rprobe "busybox: a #! script of the tree" "${B[@]}" --chdir /srv/work -- ./hello.sh a b
rprobe "busybox: a file without x: 126" "${B[@]}" --chdir /srv/work -- ./noexec.sh
rprobe "busybox: a missing program: 127" "${B[@]}" -- /bin/nope
rprobe "busybox: exit status" "${B[@]}" -- sh -c 'exit 7'
rprobe "busybox: /proc/self/exe of a static program" "${B[@]}" -- readlink /proc/self/exe
rprobe "busybox: /tmp private and writable" "${B[@]}" -- sh -c 'echo hi > /tmp/t && cat /tmp/t && ls /tmp'
if [ -x "$R/bin/probe" ]; then
  rprobe "probe: a program whose loader only the tree has (argv, /proc/self/exe)" "${B[@]}" -- probe one two
  rprobe "probe: through a PATH search and env" "${B[@]}" -- env probe x
  rprobe "probe: a #! script whose interpreter is the tree's dynamic program" "${B[@]}" --chdir /srv/work -- ./probe.sh arg
  rprobe "probe: a loader the tree lacks: ENOENT (127)" "${B[@]}" -- sh -c 'probe-noloader; echo "status $?"'
  rprobe "probe: its /proc/self/exe from a child's view (sh -c)" "${B[@]}" -- sh -c 'probe; readlink /proc/$$/exe'
else
  skipped "probe" "no rootfs-pvm-probe given"
fi
rprobe "busybox: --cow LAYER:/ makes the tree writable" "${B[@]}" --cow "$work/blayer:/" -- \
  sh -c 'echo made > /etc/new; rm -f /etc/os-release; cat /etc/new; ls /etc; mkdir -p /srv/d; ls /srv'
if [ -c "$work/blayer/etc/os-release" ] && [ -f "$work/blayer/etc/new" ]; then ok "busybox: the layer holds the change and a whiteout"
else bad "busybox: layer" "$(ls -la "$work/blayer/etc" 2>&1)"; fi
# An OCI image whose config names a User: the caller is shown as that uid:gid on both backends.
O=$work/oci
mkdir -p "$O/blobs/sha256"
blob() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$O/blobs/sha256/$h"; echo "$h"; }
tar -C "$R" -czf "$work/layer.tgz" .
printf '{"architecture":"amd64","os":"linux","config":{"User":"4242:4343","Cmd":["id"]},"rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config.json"
c=$(blob "$work/config.json"); l=$(blob "$work/layer.tgz")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$c" "$(stat -c %s "$work/config.json")" "$l" "$(stat -c %s "$work/layer.tgz")" > "$work/manifest.json"
m=$(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"u1"}}]}' \
  "$m" "$(stat -c %s "$work/manifest.json")" > "$O/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$O/oci-layout"
XDG_CACHE_HOME=$work/ocicache "$VU" run --net none --rootfs "oci:$O:u1" -- true 2>/dev/null  # unpacked once
export XDG_CACHE_HOME=$work/ocicache
rprobe "oci: the config's User 4242:4343 (ids, owners, /proc/self/status)" --net none --rootfs "oci:$O:u1" -- \
  sh -c 'echo $(id -u) $(id -g) $(stat -c "%u %g" /etc/os-release); grep -E "^(Uid|Gid)" /proc/self/status | wc -l'
rprobe "oci: --root wins over it" --net none --root --rootfs "oci:$O:u1" -- id -u
unset XDG_CACHE_HOME
# A named container entered where user namespaces are denied (pvm), then on ns: one layer.
export XDG_DATA_HOME=$work/data
expect "vu create (pvm, auto under deny-userns)" 0 "$($T "$DENY" "$VU" create devp --rootfs "$R" --root --net none >/dev/null 2>&1; echo $?)"
expect "vu enter (pvm): a change made" "0" "$(cd "$HOME" && $T "$DENY" "$VU" enter devp -- sh -c 'echo kept > /root/note; id -u' 2>&1)"
expect "vu enter (pvm) again: it persists" "kept" "$(cd "$HOME" && $T "$DENY" "$VU" enter devp -- cat /root/note 2>&1)"
if [ $have_ns = 1 ]; then
  expect "vu enter on ns sees it too" "kept" "$(cd "$HOME" && $T "$VU" enter devp -- cat /root/note 2>&1)"
fi
expect "vu rm" 0 "$("$VU" rm devp >/dev/null 2>&1; echo $?)"
unset XDG_DATA_HOME
if [ "$(find "$R" -printf '%p %s %m\n' | sort | md5sum)" = "$tree_sum" ]; then ok "busybox: the tree is unchanged"
else bad "busybox: the tree changed" "$(find "$R" -newer "$R/etc/os-release")"; fi

# --- the Debian tree: programs linked against the tree's libc -------------------------------------
if [ "${debian#skip:}" != "$debian" ]; then
  skipped "Debian tree" "${debian#skip:}"
else
  export XDG_CACHE_HOME=$work/cache
  cd "$HOME" || exit 1  # the working directory the views keep (vu warns of $work: not in the tree)
  $T "$VU" run --net none --rootfs "$debian" -- true  # unpacked once, outside the comparisons
  D=(--net none --rootfs "$debian")
  rprobe "debian: os-release" "${D[@]}" -- sh -c '. /etc/os-release; echo $ID $VERSION_CODENAME'
  rprobe "debian: id" "${D[@]}" -- id
  rprobe "debian: --root id" "${D[@]}" --root -- id
  rprobe "debian: pwd" "${D[@]}" -- pwd
  rprobe "debian: ls / (coreutils, dynamically linked)" "${D[@]}" -- ls /
  rprobe "debian: ls -ln of files of the tree" "${D[@]}" -- sh -c 'ls -ln /etc/os-release /usr/bin/ls | cut -d" " -f1-4'
  rprobe "debian: apt-get --version" "${D[@]}" -- sh -c 'apt-get --version | head -1'
  rprobe "debian: dpkg -L coreutils | xargs stat" "${D[@]}" -- sh -c 'dpkg -L coreutils | xargs stat -c "%n %s" | md5sum'
  rprobe "debian: /proc/self/exe of a dynamic program" "${D[@]}" -- readlink /proc/self/exe
  rprobe "debian: perl's \$^X (from /proc/self/exe)" "${D[@]}" -- perl -e 'print "$^X\n"'
  rprobe "debian: a #! script run by bash from the tree" "${D[@]}" -- sh -c 'printf "#!/bin/bash\necho \$0 \$BASH_VERSION\n" > /tmp/s; chmod +x /tmp/s; /tmp/s'
  rprobe "debian: /usr/bin/env bash" "${D[@]}" -- sh -c 'printf "#!/usr/bin/env bash\necho env \$#\n" > /tmp/s; chmod +x /tmp/s; /tmp/s 1 2'
  rprobe "debian: getent passwd of the caller" "${D[@]}" -- sh -c 'getent passwd $(id -u) | cut -d: -f1,3'
  # pvm only: the libraries mapped are the tree's (the host's loader would map its own).
  maps=$($T "$VU" run --backend=pvm "${D[@]}" -- cat /proc/self/maps 2>&1)
  tree=$(ls -d "$XDG_CACHE_HOME"/vu/trees/*/ | head -1)
  host_libs=$(printf '%s\n' "$maps" | grep -E 'ld-linux|libc\.so' | grep -v -F "${tree%/}/" || true)
  tree_libs=$(printf '%s\n' "$maps" | grep -E 'ld-linux|libc\.so' | grep -c -F "${tree%/}/" || true)
  if [ -z "$host_libs" ] && [ "$tree_libs" -ge 2 ]; then ok "pvm: the tree's loader and libc are mapped, not the host's"
  else bad "pvm: loader and libc" "host's: $host_libs" "tree's: $tree_libs" "$(printf '%s\n' "$maps" | head -c 800)"; fi
  # A package install into a layer over the tree: --root, apt kept root (no other ids on pvm).
  mkdir -p "$work/pkg/DEBIAN" "$work/pkg/usr/bin" "$work/debs"
  printf 'Package: vu-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: vu <vu@localhost>\nDescription: vu test package\n' > "$work/pkg/DEBIAN/control"
  printf '#!/bin/sh\necho hello from a package\n' > "$work/pkg/usr/bin/vu-hello"
  chmod 755 "$work/pkg/usr/bin/vu-hello" "$work/debs"
  if dpkg-deb --root-owner-group --build "$work/pkg" "$work/debs/vu-hello_1.0_all.deb" >/dev/null 2>"$work/stderr"; then
    $T "$VU" run --backend=pvm "${D[@]}" --root --cow "$work/player:/" --bind "$work/debs:/mnt" -- \
      apt-get -o APT::Sandbox::User=root install -y -q /mnt/vu-hello_1.0_all.deb > "$work/apt.log" 2>&1
    expect "pvm: apt-get -o APT::Sandbox::User=root install of a local .deb (--root --cow LAYER:/)" 0 $? "$(tail -8 "$work/apt.log")"
    expect "pvm: ...the package runs and dpkg knows it, from the layer" "hello from a package|install ok installed" \
      "$($T "$VU" run --backend=pvm "${D[@]}" --root --cow "$work/player:/" -- sh -c 'vu-hello; dpkg-query -W -f "\${Status}" vu-hello' 2>&1 | tr '\n' '|')"
    if [ -f "$work/player/usr/bin/vu-hello" ] && ! ls "$XDG_CACHE_HOME"/vu/trees/*/usr/bin/vu-hello >/dev/null 2>&1; then
      ok "pvm: the package is in the layer, the tree unchanged"
    else bad "pvm: layer/tree" "$(ls -la "$work/player/usr/bin" 2>&1 | head -5)"; fi
    if [ $have_ns = 1 ]; then
      expect "ns reads the layer pvm wrote (one layer format)" "hello from a package" \
        "$($T "$VU" run --backend=ns "${D[@]}" --root --cow "$work/player:/" -- vu-hello 2>&1)"
    fi
  else
    skipped "pvm: apt-get install" "dpkg-deb could not build the package: $(cat "$work/stderr")"
  fi
fi
summary
