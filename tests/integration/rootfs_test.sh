#!/usr/bin/env bash
# rootfs_test.sh VU DENY_USERNS [DEBIAN] — --rootfs DIR: another tree as the view's /, as an
# unprivileged user. The tree is made here from busybox-static (a Debian package; SKIP without
# it). DEBIAN: a tarball of a Debian tree (rootfs_run.sh makes it with mmdebstrap), or
# "skip:REASON": the Debian part (os-release, id, apt-get install of a local .deb) then skips.
set -u
VU=$1
here=$(dirname "$0")
. "$here/harness.sh" || exit 1
if [ "$(id -u)" = 0 ]; then echo "SKIP: must run unprivileged"; exit 77; fi
need_static_busybox
if ! "$VU" run --backend=ns --net none -- true 2>/dev/null; then echo "SKIP: the ns backend does not work here"; exit 77; fi

R=$work/tree
mkdir -p "$R/bin" "$R/etc" "$R/proc" "$R/dev" "$R/sys" "$R/tmp" "$R/root" "$R/srv/work"
cp "$bb" "$R/bin/busybox"
for a in sh ls cat id pwd echo stat touch mkdir grep readlink hostname uname wc head sleep kill ps tr; do ln -s busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf 'NAME="vu test tree"\nID=vutest\n' > "$R/etc/os-release"
echo tree > "$R/srv/work/marker"
echo host-data > "$work/hostfile"
tree_sum=$(find "$R" -printf '%p %s %m\n' | sort | md5sum)

run() { (cd "$R/srv/work" && "$VU" run --net none --rootfs "$R" "$@"); }

got_id=$(run -- sh -c '. /etc/os-release; echo $ID'); expect "os-release is the tree's" vutest "$got_id"
got_ls=$(run -- ls / | tr '\n' ' '); case "$got_ls" in *bin*etc*proc*srv*tmp*) ok "ls / lists the tree ($got_ls)";; *) bad "ls /" "$got_ls";; esac
expect "--chdir into the tree" "/srv/work tree" "$(run --chdir /srv/work -- sh -c 'echo $(pwd) $(cat marker)')"
expect "the working directory is kept where the view has it (\$HOME)" "$HOME" \
  "$(cd "$HOME" && "$VU" run --net none --rootfs "$R" -- pwd)"
expect "...else / (with a warning)" "/" "$(run -- pwd 2>/dev/null)"
expect "id: the caller, named from the tree's /etc/passwd (added)" "uid=$(id -u)($(id -un))" \
  "$(run -- id | cut -d' ' -f1)"
expect "--root: uid 0, the tree's root" "uid=0(root)" "$(run --root -- id | cut -d' ' -f1)"
expect "the root is read-only" 1 "$(run -- sh -c 'touch /x 2>/dev/null; echo $?')"
expect "/tmp is private and writable" "hi 0" "$(run -- sh -c 'echo hi > /tmp/t && echo $(cat /tmp/t) $(ls /tmp | grep -c -v t)')"
if [ ! -e "$R/tmp/t" ]; then ok "nothing written into the tree's /tmp"; else bad "the tree's /tmp was written" ""; fi
expect "\$HOME is bound" yes "$(run -- sh -c "test -d '$HOME' && echo yes")"
expect "--no-home: it is not" no "$(run --no-home -- sh -c "test -d '$HOME' && echo yes || echo no")"
expect "/dev: null zero urandom tty, fd links" "ok" \
  "$(run -- sh -c 'echo x > /dev/null && head -c 4 /dev/zero | wc -c | grep -q 4 && head -c 4 /dev/urandom | wc -c | grep -q 4 && test -c /dev/tty && readlink /dev/fd | grep -q /proc/self/fd && echo ok')"
expect "/proc is there" yes "$(run -- sh -c 'test -r /proc/self/status && echo yes')"
expect "/sys is read-only" 1 "$(run -- sh -c 'touch /sys/x 2>/dev/null; echo $?')"
expect "--bind on top takes a host path as source" host-data "$(run --bind "$work/hostfile:/srv/h" -- cat /srv/h)"
expect "--tmpfs on top" ok "$(run --tmpfs /scratch -- sh -c 'touch /scratch/a && echo ok')"
# The default network brings its resolv.conf; --net none the host's.
expect "default network: resolv.conf from slirp" "nameserver 10.0.2.3" \
  "$(cd "$R" && "$VU" run --rootfs "$R" -- cat /etc/resolv.conf | head -1)"
expect "exit status" 7 "$(run -- sh -c 'exit 7'; echo $?)"
# Its own pid namespace and a fresh /proc: vu's init is pid 1, the command pid 2; ps lists only
# the view's processes; signals and statuses pass through the init as without it.
expect "pid namespace: the command is pid 2 below vu-init" "2 vu-init" "$(run -- sh -c 'echo $$ $(cat /proc/1/comm)')"
expect "/proc/self is the reader's own (pid 2 after exec)" "2 (cat)" "$(run -- sh -c 'exec cat /proc/self/stat' | cut -d' ' -f1,2)"
expect "ps lists only the view's processes" "1 vu-init|2 ps|" "$(run -- ps -o pid,comm | awk 'NR > 1 { print $1, $2 }' | tr '\n' '|')"
expect "a command killed by a signal: 128+N" 143 "$(run -- sh -c 'kill -TERM $$'; echo $?)"
expect "...and vu says which (as without a pid namespace)" "command killed by signal 15" \
  "$( (cd "$R" && "$VU" run -v --net none --rootfs "$R" -- sh -c 'kill -TERM $$') 2>&1 | grep -o 'command killed by signal 15')"
(cd "$R" && exec "$VU" run --net none --rootfs "$R" -- sh -c 'trap "echo got TERM; exit 9" TERM; echo ready; while :; do sleep 0.1; done') > "$work/sig.out" 2>/dev/null &
vpid=$!
for _ in $(seq 100); do grep -q ready "$work/sig.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $vpid; wait $vpid; rc=$?
expect "SIGTERM to vu reaches the command through the init" "9 got TERM" "$rc $(grep got "$work/sig.out")"
expect "orphans are reaped (no zombie)" 0 \
  "$(run -- sh -c 'sh -c "sleep 0.1 &"; sleep 0.4; cat /proc/[0-9]*/stat 2>/dev/null | grep -c ") Z "')"
run -- sh -c 'sleep 1031 & echo left' >/dev/null
left=$(pgrep -u "$(id -u)" -f 'sleep 1031' || true)
expect "a process the command leaves is killed at its exit" "" "$left"
(cd "$R" && exec "$VU" run --net none --rootfs "$R" -- sh -c 'sleep 1032 & sleep 1033') >/dev/null 2>&1 &
vpid=$!
for _ in $(seq 100); do pgrep -u "$(id -u)" -f 'sleep 1033' >/dev/null && break; sleep 0.05; done
kill -KILL $vpid; wait $vpid 2>/dev/null
for _ in $(seq 50); do left=$(pgrep -u "$(id -u)" -f 'sleep 103[23]' || true); [ -z "$left" ] && break; sleep 0.1; done
expect "kill -9 of vu leaves nothing of the view" "" "$left"
if [ "$(find "$R" -printf '%p %s %m\n' | sort | md5sum)" = "$tree_sum" ]; then ok "the tree is unchanged on the host"
else bad "the tree changed" "$(find "$R" -newer "$R/etc/os-release")"; fi

# A tar archive of the tree: unpacked once into the cache (content-addressed), then found there.
export XDG_CACHE_HOME=$work/cache
tar -C "$R" -czf "$work/tree.tgz" .
expect "--rootfs ARCHIVE: its tree is /" vutest "$(run_tgz() { "$VU" run --net none --rootfs "$work/tree.tgz" "$@"; }; run_tgz -- sh -c '. /etc/os-release; echo $ID')"
trees=$(ls "$XDG_CACHE_HOME/vu/trees" | wc -l)
expect "one tree in the cache, named by the archive's SHA-256" "1 $(sha256sum < "$work/tree.tgz" | cut -d' ' -f1)" \
  "$trees $(ls "$XDG_CACHE_HOME/vu/trees")"
touch -d '2001-01-01' "$XDG_CACHE_HOME/vu/trees"/*/etc/os-release
"$VU" run --net none --rootfs "$work/tree.tgz" -- true
expect "the second run uses the cache (nothing unpacked again)" 978307200 \
  "$(stat -c %Y "$XDG_CACHE_HOME/vu/trees"/*/etc/os-release)"
# Hostile and broken archives: refused (2), nothing left in the cache.
mkdir -p "$work/evil/d"; echo x > "$work/evil/d/f"
(cd "$work/evil/d" && tar -czf "$work/dotdot.tgz" -P --transform 's,^,../,' f)
tar -czf "$work/absolute.tgz" --absolute-names "$work/evil/d/f" 2>/dev/null
ln -s /tmp "$work/evil/link"; mkdir -p "$work/evil2/link"; echo x > "$work/evil2/link/planted"
(cd "$work/evil" && tar -cf "$work/through.tar" link) && (cd "$work/evil2" && tar -rf "$work/through.tar" link/planted)
head -c 2000 "$work/tree.tgz" > "$work/truncated.tgz"
head -c 4096 /dev/urandom > "$work/random.tgz"
for a in dotdot absolute through truncated random; do
  f=$work/$a.tgz; [ $a = through ] && f=$work/through.tar
  check_err "a hostile or broken archive is refused: $a" 2 'not a usable archive' "$VU" run --rootfs "$f" -- true
done
if [ ! -e /tmp/planted ] && [ -z "$(ls "$XDG_CACHE_HOME/vu" | grep tmp)" ] && [ "$(ls "$XDG_CACHE_HOME/vu/trees" | wc -l)" = 1 ]; then
  # (the refused archives added no tree: still only the good one)
  ok "nothing written outside, nothing half-written in the cache"
else bad "leftovers of refused archives" "$(ls -la "$XDG_CACHE_HOME/vu" /tmp/planted 2>&1)"; fi

# An OCI image layout (made here by hand: two layers, a whiteout, an opaque directory, a config).
O=$work/oci
mkdir -p "$O/blobs/sha256" "$work/l2/etc" "$work/l2/srv"
blob() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$O/blobs/sha256/$h"; echo "$h"; }
tar -C "$R" -czf "$work/layer1.tgz" .
echo added > "$work/l2/etc/added"; : > "$work/l2/etc/.wh.os-release"; : > "$work/l2/srv/.wh..wh..opq"; echo n > "$work/l2/srv/newonly"
tar -C "$work/l2" -czf "$work/layer2.tgz" .
l1=$(blob "$work/layer1.tgz"); l2=$(blob "$work/layer2.tgz")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["FOO=bar","PATH=/bin"],"WorkingDir":"/srv","Cmd":["sh","-c","echo from-cmd"]},"rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config.json"
c=$(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$c" "$(stat -c %s "$work/config.json")" "$l1" "$(stat -c %s "$work/layer1.tgz")" "$l2" "$(stat -c %s "$work/layer2.tgz")" > "$work/manifest.json"
m=$(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"t1"}}]}' \
  "$m" "$(stat -c %s "$work/manifest.json")" > "$O/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$O/oci-layout"
expect "oci:LAYOUT:TAG: layers in order, a whiteout, an opaque directory, the config's Env and WorkingDir" \
  "bar /srv added|group|hosts|passwd|resolv.conf newonly" \
  "$("$VU" run --net none --rootfs "oci:$O:t1" -- sh -c 'echo $FOO $(pwd) $(ls /etc | tr "\n" "|" | sed "s/|$//") $(ls /srv)')"
expect "...and its Cmd when no command is given" "from-cmd" "$("$VU" run --net none --rootfs "oci:$O:t1" 2>/dev/null)"
check_err "oci: a tag the layout lacks: names the ones it has" 2 'no image tagged nope.*t1' "$VU" run --rootfs "oci:$O:nope" -- true
cp -r "$O" "$work/oci-bad"
printf 'X' | dd of="$work/oci-bad/blobs/sha256/$l2" bs=1 seek=20 conv=notrunc status=none
rm -rf "$XDG_CACHE_HOME/vu/trees/$m"
check_err "oci: a layer whose bytes do not match its digest is refused" 2 'do not match its digest|not a usable' \
  "$VU" run --rootfs "oci:$work/oci-bad:t1" -- true
if [ -z "$(ls "$XDG_CACHE_HOME/vu" | grep tmp)" ] && [ ! -e "$XDG_CACHE_HOME/vu/trees/$m" ]; then ok "oci: nothing half-written in the cache"
else bad "oci: cache leftovers" "$(ls -la "$XDG_CACHE_HOME/vu" "$XDG_CACHE_HOME/vu/trees")"; fi

# The config's User: a uid:gid the tree lacks, a name it has, root; --root wins over it.
oci_with_user() {  # TAG USER
  local cf=$work/config-$1.json mf=$work/manifest-$1.json c m
  printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Cmd":["id"]},"rootfs":{"type":"layers","diff_ids":[]}}' "$2" > "$cf"
  c=$(blob "$cf")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
    "$c" "$(stat -c %s "$cf")" "$l1" "$(stat -c %s "$work/layer1.tgz")" > "$mf"
  m=$(blob "$mf")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$m" "$(stat -c %s "$mf")" "$1" > "$work/index-$1.json"
  mkdir -p "$work/oci-$1" && cp -r "$O/blobs" "$O/oci-layout" "$work/oci-$1/" && cp "$work/index-$1.json" "$work/oci-$1/index.json"
}
oci_with_user u1 4242:4343
expect "oci: the config's User uid:gid runs the command (the caller mapped to it)" "4242 4343 4242" \
  "$("$VU" run --net none --rootfs "oci:$work/oci-u1:u1" -- sh -c 'echo $(id -u) $(id -g) $(stat -c %u /srv/work/marker)')"
expect "oci: --root wins over the config's User" "0" "$("$VU" run --net none --root --rootfs "oci:$work/oci-u1:u1" -- id -u)"
oci_with_user u2 root
expect "oci: User root is --root" "uid=0(root)" "$("$VU" run --net none --rootfs "oci:$work/oci-u2:u2" 2>/dev/null | cut -d' ' -f1)"
oci_with_user u3 nobody
check_err "oci: a User the tree's /etc/passwd lacks" 2 "user nobody is not in the tree's /etc/passwd" \
  "$VU" run --net none --rootfs "oci:$work/oci-u3:u3" -- true

# A writable tree: --cow LAYER:/ (kernel overlayfs over it); the tree itself stays untouched.
L=$work/wlayer
expect "--cow LAYER:/ makes the tree writable" "made 0" \
  "$("$VU" run --net none --rootfs "$R" --cow "$L:/" -- sh -c 'echo made > /etc/new; rm /etc/os-release; cat /etc/new; ls /etc | grep -c os-release' | tr '\n' ' ' | sed 's/ $//')"
if [ -f "$L/etc/new" ] && [ -c "$L/etc/os-release" ] && [ -f "$R/etc/os-release" ] && [ ! -e "$R/etc/new" ]; then
  ok "the changes are in the layer (a whiteout for the removed file), the tree unchanged"
else bad "layer contents" "$(ls -la "$L/etc" "$R/etc" 2>&1)"; fi
expect "the next view over the same layer sees them" "made" \
  "$("$VU" run --net none --rootfs "$R" --cow "$L:/" -- sh -c 'cat /etc/new; cat /etc/os-release 2>/dev/null')"

# Named containers: create, enter (changes persist), one enter at a time, ls, rm.
export XDG_DATA_HOME=$work/data
expect "vu create" 0 "$("$VU" create dev --rootfs "$R" --root --net none >/dev/null; echo $?)"
expect "vu enter: --root from the view file, a change made" "0" "$("$VU" enter dev -- sh -c 'echo kept > /root/note; id -u')"
expect "vu enter again: the change persists" "kept" "$("$VU" enter dev -- cat /root/note)"
"$VU" enter dev --bind "$work:/w" -- sh -c "touch /w/in-enter; sleep 3" & first=$!
for _ in $(seq 100); do [ -e "$work/in-enter" ] && break; sleep 0.05; done
check_err "a second enter while one runs: refused, saying why" 125 'in use by another' "$VU" enter dev -- true
wait $first
case "$("$VU" ls)" in *dev*"$R"*) ok "vu ls shows the container and its tree";; *) bad "vu ls" "$("$VU" ls)";; esac
check_err "vu create of an existing name" 2 'exists already' "$VU" create dev --rootfs "$R"
check_err "vu create without --rootfs" 2 'needs --rootfs' "$VU" create other --tmpfs /x
check_err "a name with a slash" 2 'container name' "$VU" create a/b --rootfs "$R"
expect "vu rm" 0 "$("$VU" rm dev >/dev/null; echo $?)"
if [ ! -e "$XDG_DATA_HOME/vu/containers/dev" ]; then ok "vu rm removed its directory"; else bad "vu rm left" "$(ls -la "$XDG_DATA_HOME/vu/containers/dev")"; fi
check_err "vu enter of a removed container" 2 'no container' "$VU" enter dev -- true

# A Debian tree (mmdebstrap --variant=apt, made by rootfs_run.sh): what a developer container does.
debian=${3:-skip:no Debian tree given (rootfs_run.sh makes one with mmdebstrap)}
if [ "${debian#skip:}" != "$debian" ]; then
  skipped "Debian tree" "${debian#skip:}"
else
  drun() { timeout 300 "$VU" run --net none --rootfs "$debian" "$@"; }
  expect "debian: os-release" "debian" "$(drun -- sh -c '. /etc/os-release; echo $ID')"
  expect "debian: id (the caller, added to the tree's passwd)" "uid=$(id -u)($(id -un))" "$(cd "$HOME" && drun -- id | cut -d' ' -f1)"
  expect "debian: --root" "uid=0(root) gid=0(root)" "$(drun --root -- id | cut -d' ' -f1,2)"
  expect "debian: pwd kept" "$HOME" "$(cd "$HOME" && drun -- pwd)"
  got_ls=$(drun -- ls / | tr '\n' ' '); case "$got_ls" in *bin*etc*usr*var*) ok "debian: ls / ($got_ls)";; *) bad "debian: ls /" "$got_ls";; esac
  # A local package, built here, installed with apt into a layer over the tree.
  mkdir -p "$work/pkg/DEBIAN" "$work/pkg/usr/bin" "$work/debs"
  printf 'Package: vu-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: vu <vu@localhost>\nDescription: vu test package\n' > "$work/pkg/DEBIAN/control"
  printf '#!/bin/sh\necho hello from a package\n' > "$work/pkg/usr/bin/vu-hello"
  chmod 755 "$work/pkg/usr/bin/vu-hello"
  if ! dpkg-deb --root-owner-group --build "$work/pkg" "$work/debs/vu-hello_1.0_all.deb" >/dev/null 2>"$work/stderr"; then
    skipped "debian: apt-get install" "dpkg-deb could not build the package: $(cat "$work/stderr")"
  else
    chmod 755 "$work/debs"
    apt_in() { drun --root --cow "$1:/" --bind "$work/debs:/mnt" "${@:2}"; }
    if "$VU" run --net none --root --map-users -- true 2>/dev/null; then
      # --root --map-users: apt drops to _apt (uid 42) and dpkg chowns to system users: mapped.
      apt_in "$work/dl1" --map-users -- apt-get install -y -q /mnt/vu-hello_1.0_all.deb > "$work/apt.log" 2>&1
      expect "debian: apt-get install of a local .deb (--root --map-users)" 0 $? "$(tail -5 "$work/apt.log")"
      expect "debian: the package runs, and stays in the layer" "hello from a package|install ok installed" \
        "$(apt_in "$work/dl1" --map-users -- sh -c 'vu-hello; dpkg-query -W -f "\${Status}" vu-hello' | tr '\n' '|')"
    else
      skipped "debian: apt-get install with --map-users" "no subordinate ids for $(id -un) (scripts/setup.sh --test-env)"
    fi
    # --root alone: only uid 0 exists in the view, so apt's drop to _apt fails; its own option
    # keeps it root (README: "Package managers inside").
    apt_in "$work/dl2" -- apt-get -o APT::Sandbox::User=root install -y -q /mnt/vu-hello_1.0_all.deb > "$work/apt.log" 2>&1
    expect "debian: apt-get -o APT::Sandbox::User=root install (--root, no --map-users)" 0 $? "$(tail -5 "$work/apt.log")"
    expect "debian: ...and the package runs" "hello from a package" "$(apt_in "$work/dl2" -- vu-hello)"
    if ls "$XDG_CACHE_HOME"/vu/trees/*/usr/bin/vu-hello >/dev/null 2>&1; then bad "debian: the unpacked tree itself was changed"
    elif [ -f "$work/dl1/usr/bin/vu-hello" ] || [ -f "$work/dl2/usr/bin/vu-hello" ]; then ok "debian: the tree is unchanged, the package is in the layer"
    else bad "debian: the package is in no layer" "$(ls "$work/dl1" "$work/dl2" 2>&1)"; fi
  fi
fi

# Bad input: status 2, a vu: line, nothing run.
check_err "a missing tree" 2 'rootfs' "$VU" run --rootfs "$work/nope" -- true
check_err "a file, neither a tree nor an archive" 2 'not a usable archive' "$VU" run --rootfs "$work/hostfile" -- true
mkdir -p "$work/empty"
check_err "a tree without /bin/sh" 2 'no /bin/sh' "$VU" run --rootfs "$work/empty" -- true
check_err "with --cow below / (not yet)" 2 'not supported yet' "$VU" run --rootfs "$R" --cow "$work/l:/usr" -- true
check_err "--bind DIR:/ is a usage error" 2 'root directory' "$VU" run --bind "$R:/" -- true
expect "under pvm too (rootfs_pvm_test.sh compares the two)" vutest \
  "$("$VU" run --backend=pvm --net none --rootfs "$R" -- sh -c '. /etc/os-release; echo $ID')"
summary
