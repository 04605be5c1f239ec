#!/usr/bin/env bash
# cado_pam_test.sh BUILD PAM_SESSION — the cado suite and the pam_net modules, for real: as root
# it installs cado setuid _cado with file capabilities (scripts/install-cado.sh), writes
# /etc/cado.conf, /etc/pam.d services and groups (all restored on exit), then drives cado as
# the unprivileged test user and as a second user that cado.conf does not name, and opens PAM
# sessions with pam-session (this project's login-like helper) and pamtester.
set -u
BUILD=$(cd "$1" && pwd)
PAMSESSION=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root to install cado setuid and PAM services"; exit 77; fi

user=${VU_TEST_USER:-vu-tester}
other=vu-cado-other
pw=vu-test-pw-1
"$here/../../scripts/setup.sh" --test-env || { echo "SKIP: cannot prepare $user"; exit 77; }
created_groups=()
inst=$(mktemp -d /usr/local/lib/vu-cado-test.XXXXXX)
chmod 755 "$inst"
backup() { [ -e "$1" ] && cp -a "$1" "$work/backup.$(basename "$1")"; }
restore() { if [ -e "$work/backup.$(basename "$1")" ]; then cp -a "$work/backup.$(basename "$1")" "$1"; else rm -f "$1"; fi; }
cleanup() {
  restore /etc/cado.conf; restore /etc/pam.d/cado
  rm -f /etc/pam.d/vu-test-*
  for ns in "$user" vpn vu-join-t vu-att-t; do ip netns delete "$ns" 2>/dev/null; done
  rm -rf "/etc/netns/$user" /var/spool/cado/"$user" /var/spool/cado/vu-probe /tmp/vu-cado-cond.*
  rm -f /etc/vu-test-pamnet-link
  # scado -e keeps the user's copy when it saves nothing ("your copy is /tmp/cado-scado.…"), as
  # the refusals above make it do: the test removes the copies its user was left.
  find /tmp -maxdepth 1 -name 'cado-scado.*' -user "$user" -type f -delete 2>/dev/null
  for g in "${created_groups[@]}"; do groupdel "$g" 2>/dev/null; done
  userdel -r "$other" 2>/dev/null
  rm -rf "$inst"
  chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
backup /etc/cado.conf; backup /etc/pam.d/cado

id "$other" >/dev/null 2>&1 || useradd -m -s /bin/bash "$other"
printf '%s:%s\n%s:%s\n' "$user" "$pw" "$other" "$pw" | chpasswd
for g in newnet usernet groupnet-vpn vu-cado-grp; do
  getent group "$g" >/dev/null || { groupadd "$g"; created_groups+=("$g"); }
done
usermod -aG newnet,usernet,groupnet-vpn "$user"

# ---- cado -----------------------------------------------------------------------------------
home=$(getent passwd "$user" | cut -d: -f6)
cond=/tmp/vu-cado-cond.$$
cat > /etc/cado.conf <<CONF
# vu test cado.conf
net_admin,net_raw : $user
sys_admin : $user
sys_time : $user : /bin/false
sys_nice : $user : /usr/bin/touch $cond
sys_ptrace: @vu-cado-grp
sys_boot : $user : /bin/bash -c false
sys_pacct : $user : false
mknod : $user : /usr/bin/test \$USER = root
sys_rawio : $user : $inst/cond-py
lease : $user : /bin/sleep 2.4242
not_a_cap : $user
CONF
chmod 600 /etc/cado.conf
printf '#!/usr/bin/python3\nimport sys\nsys.exit(1)\n' > "$inst/cond-py"; chmod 755 "$inst/cond-py"
printf 'auth required pam_unix.so\n' > /etc/pam.d/cado
"$here/../../scripts/install-cado.sh" --prefix "$inst" --build "$BUILD" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; echo "SKIP: cannot install cado here"; exit 77; }
caps=$(getcap "$inst/bin/cado" | cut -d' ' -f2-)
case "$caps" in
  *cap_dac_read_search*cap_net_admin*cap_net_raw*|*cap_net_admin*) ok "cado -s set the file capabilities ($caps)" ;;
  *) bad "cado -s set the file capabilities" "got: $caps" ;;
esac
[ "$(stat -c %U:%a "$inst/bin/cado")" = "_cado:4755" ] && ok "cado is setuid _cado" || bad "cado is setuid _cado" "$(stat -c %U:%a "$inst/bin/cado")"

as() {  # as USER CMD… (stdin passed through)
  local u=$1; shift
  runuser -u "$u" -- env -i HOME="$(getent passwd "$u" | cut -d: -f6)" USER="$u" SHELL=/bin/sh \
    PATH="$inst/bin:/usr/bin:/bin" LANG=C "$@"
}
# check NAME WANT_RC WANT_STDOUT STDIN CMD…
check() {
  local name=$1 want_rc=$2 want=$3 input=$4; shift 4
  local out rc
  out=$(printf '%s' "$input" | "$@" 2>"$work/err"); rc=$?
  if [ "$rc" = "$want_rc" ] && [ "$out" = "$want" ]; then ok "$name"
  else bad "$name" "status $rc (want $want_rc)" "stdout: $out" "want:   $want" "stderr: $(head -c 400 "$work/err")"; fi
}
check "cado net_admin,net_raw: exactly CapAmb 0x3000" 0 "CapAmb:	0000000000003000" "$pw
" as "$user" cado net_admin,net_raw -- grep CapAmb /proc/self/status
check "hex masks are capability lists too" 0 "net_admin,net_raw" "$pw
" as "$user" cado 3000 -- caprint -c
check "options after the command are the command's (no --)" 0 "net_raw" "$pw
" as "$user" cado net_raw caprint -c
check "wrong password: status 2" 2 "" "wrong
" as "$user" cado net_admin -- true
grep -q "Authentication failure" "$work/err" && ok "…says Authentication failure" || bad "…says Authentication failure" "$(cat "$work/err")"
check "a capability cado.conf does not give: refused before any password" 2 "" "" as "$user" cado sys_module -- true
grep -q "Permission denied" "$work/err" && ! grep -qi password "$work/err" && ok "…Permission denied, no password asked" || bad "…Permission denied, no password asked" "$(cat "$work/err")"
check "a user cado.conf does not name: refused" 2 "" "$pw
" as "$other" cado net_admin -- true
check "-f grants what is allowed" 0 "net_raw" "$pw
" as "$user" cado -f net_raw,sys_module -- caprint -c
check "a failing condition command: not granted" 2 "" "$pw
" as "$user" cado sys_time -- true
rm -f "$cond"
check "a condition command that succeeds: granted" 0 "sys_nice" "$pw
" as "$user" cado sys_nice -- caprint -c
[ "$(stat -c %U "$cond" 2>/dev/null)" = _cado ] && ok "…and it ran as _cado, not as the caller" || bad "…condition ran as _cado" "owner: $(stat -c %U "$cond" 2>&1)"
# Conditions run as _cado with a fixed environment: the caller can neither feed them code
# (BASH_ENV, PATH), nor choose their arguments ($USER), nor trace them.
printf 'exit 0\n' > "$inst/exit0.sh"; chmod 644 "$inst/exit0.sh"
mkdir -p "$inst/evilpath"; printf '#!/bin/sh\nexit 0\n' > "$inst/evilpath/false"; chmod 755 "$inst/evilpath/false"
check "a condition: the caller's BASH_ENV does not run in it" 2 "" "$pw
" as "$user" env BASH_ENV="$inst/exit0.sh" cado sys_boot -- caprint -c
check "a condition: its command is found in a fixed PATH, not the caller's" 2 "" "$pw
" as "$user" env PATH="$inst/evilpath:$inst/bin:/usr/bin:/bin" cado sys_pacct -- caprint -c
check "a condition: \$USER is the caller's passwd name, not the caller's variable" 2 "" "$pw
" as "$user" env USER=root cado mknod -- caprint -c
# …nor through their home: HOME is _cado's, so python's user site-packages (a *.pth runs at
# start-up) of the caller's home is not read by a python condition. Code run as _cado owns the
# setuid cado: it could rewrite it through a shared mapping, keeping setuid and capabilities.
if [ -x /usr/bin/python3 ]; then
  usersite=$(as "$user" /usr/bin/python3 -c 'import site; print(site.getusersitepackages())')
  as "$user" sh -c "mkdir -p '$usersite' && printf 'import os; os._exit(0)\n' > '$usersite/vu-cado-test.pth'"
  check "a condition: the caller's home feeds it no code (python user site-packages)" 2 "" "$pw
" as "$user" cado sys_rawio -- caprint -c
  rm -f "$usersite/vu-cado-test.pth"
else
  skipped "a condition: the caller's home feeds it no code" "no /usr/bin/python3"
fi
as "$user" sh -c "printf '%s\n' '$pw' | KEEP_ME=1 BASH_ENV=/x cado lease -- true" >/dev/null 2>&1 & bg=$!
pid=""; for _ in $(seq 60); do pid=$(pgrep -f '^/bin/sleep 2.4242$' | head -1); [ -n "$pid" ] && break; sleep 0.05; done
if [ -n "$pid" ]; then
  want="HOME=$(getent passwd _cado | cut -d: -f6)
LOGNAME=$user
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SHELL=$(getent passwd _cado | cut -d: -f7)
USER=$user"
  got=$(tr '\0' '\n' < "/proc/$pid/environ" | sort)
  [ "$got" = "$want" ] && ok "a condition's environment is fixed (PATH, USER, LOGNAME; _cado's HOME, SHELL)" || bad "a condition's environment" "got:" "$got" "want:" "$want"
  [ "$(stat -c %U "/proc/$pid")" = _cado ] && ok "…it runs as _cado" || bad "…it runs as _cado" "$(stat -c %U "/proc/$pid")"
  if command -v strace >/dev/null; then
    out=$(as "$user" timeout 2 strace -p "$pid" -e trace=none 2>&1)
    echo "$out" | grep -q "Operation not permitted" && ok "…the caller cannot ptrace it" || bad "…the caller cannot ptrace it" "$out"
  else
    skipped "…the caller cannot ptrace it" "strace not installed (scripts/setup.sh installs it)"
  fi
else
  bad "the condition command ran" "no /bin/sleep 2.4242 process"
fi
wait $bg
check "@group: not a member, refused" 2 "" "" as "$user" cado sys_ptrace -- true
usermod -aG vu-cado-grp "$user"
check "@group: a member is granted" 0 "sys_ptrace" "$pw
" as "$user" cado sys_ptrace -- caprint -c
gpasswd -d "$user" vu-cado-grp >/dev/null
out=$(as "$user" cado -v 2>&1)
want="Allowed ambient capabilities:
  12 0000000000001000 cap_net_admin
  13 0000000000002000 cap_net_raw
  21 0000000000200000 cap_sys_admin
  23 0000000000800000 cap_sys_nice
  28 0000000010000000 cap_lease
     0000000010a03000"
[ "$out" = "$want" ] && ok "cado -v lists what cado.conf allows (original format)" || bad "cado -v" "got:" "$out" "want:" "$want"
out=$(printf '%s\n' "$pw" | as "$user" env LD_LIBRARY_PATH=/x GCONV_PATH=/y MALLOC_CHECK_=3 KEEP_ME=1 "$inst/bin/cado" net_raw -- env 2>/dev/null)
if echo "$out" | grep -q '^KEEP_ME=1$' && ! echo "$out" | grep -qE '^(LD_|GCONV_PATH|MALLOC_)'; then ok "the environment is sanitized (LD_*, GCONV_PATH, MALLOC_* gone, the rest kept)"
else bad "the environment is sanitized" "$out"; fi
check "caprint -l" 0 "12 0000000000001000 cap_net_admin
13 0000000000002000 cap_net_raw
   0000000000003000" "$pw
" as "$user" cado net_admin,net_raw -- caprint -l
check "caprint -p" 0 "net_admin,net_raw#" "$pw
" as "$user" cado net_admin,net_raw -- caprint -p
check "cadrop drops one capability" 0 "net_admin" "$pw
" as "$user" cado net_admin,net_raw -- cadrop net_raw caprint -c
check "cadrop with no list drops all" 0 "" "$pw
" as "$user" cado net_admin,net_raw -- cadrop all caprint -c
check "cado: bad capability list" 2 "" "" as "$user" cado net_nonsense -- true
check "cado: usage" 1 "" "" as "$user" cado
as "$user" cado --help 2>&1 | grep -q "With -S the environment is reset (as sudo's env_reset)" && ok "cado --help documents the -S environment reset" \
  || bad "cado --help documents the -S environment reset"

# ---- scado and cado -S ------------------------------------------------------------------------
as "$user" sh -c "mkdir -p '$home/bin' && cp '$inst/bin/caprint' '$home/bin/mytool'"
editor=$inst/editor.sh
printf '#!/bin/sh\nprintf "%%s : net_raw :\\n" "%s" > "$1"\n' "$home/bin/mytool" > "$editor"; chmod 755 "$editor"
check "scado -e fills in the digest (password asked)" 0 "" "$pw
" as "$user" env EDITOR="$editor" scado -e
out=$(as "$user" scado -l)
digest=$(sha256sum "$home/bin/mytool" | cut -d' ' -f1)
[ "$out" = "$home/bin/mytool : net_raw : $digest" ] && ok "scado -l shows the line with its SHA-256" || bad "scado -l" "$out" "want digest $digest"
[ "$(stat -c %a /var/spool/cado/"$user")" = 600 ] && ! as "$user" cat /var/spool/cado/"$user" >/dev/null 2>&1 \
  && ok "the spool file is out of the user's reach" || bad "the spool file is out of the user's reach"
check "cado -S: no password for the pre-authorized program" 0 "net_raw" "" as "$user" cado -S net_raw -- "$home/bin/mytool" -c
check "cado -S: a capability scado does not list is refused" 2 "" "" as "$user" cado -S net_admin -- "$home/bin/mytool" -c
check "cado -S: a program scado does not list is refused" 2 "" "" as "$user" cado -S net_raw -- "$inst/bin/caprint" -c
as "$user" sh -c "printf x >> '$home/bin/mytool'"
check "cado -S: a modified binary is refused" 2 "" "" as "$user" cado -S net_raw -- "$home/bin/mytool" -c
grep -q "EXECUTABLE DIGEST HAS CHANGED" "$work/err" && ok "…with the warning banner" || bad "…with the warning banner" "$(cat "$work/err")"
# What a scado killed mid-save leaves (its USER:XXXXXX temporary) goes at the next save; a fresh
# one (a scado saving now) and another user's stay.
for t in "$user:AbC123" "$user:fresh1" "root:AbC123"; do : > "/var/spool/cado/$t"; chown root:_cado "/var/spool/cado/$t"; done
touch -d '-5 min' "/var/spool/cado/$user:AbC123" "/var/spool/cado/root:AbC123"
check "scado -u refreshes the digest" 0 "" "$pw
" as "$user" scado -u "$home/bin/mytool"
left=$(cd /var/spool/cado && ls -d "$user":* root:* 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')
[ "$left" = "$(printf '%s\n' "$user:fresh1" root:AbC123 | LC_ALL=C sort | tr '\n' ' ')" ] && ok "scado: a killed scado's stale temporary is removed at the next save, nothing else" \
  || bad "scado: stale temporaries" "left: $left"
rm -f "/var/spool/cado/$user:fresh1" /var/spool/cado/root:AbC123
check "…then cado -S runs it again" 0 "net_raw" "" as "$user" cado -S net_raw -- "$home/bin/mytool" -c
check "scado: two actions" 255 "" "" as "$user" scado -l -D
as "$user" sh -c "printf y >> '$home/bin/mytool'"
check "scado -U with a wrong password (3 tries)" 254 "" "bad
bad
bad
" as "$user" scado -U
# cado -S: the environment is reset (sudo's env_reset) and the program is read with the caller's
# ids; scado hashes with the caller's ids too.
as "$user" sh -c "printf '#!/bin/bash\n$inst/bin/caprint -c\n' > '$home/bin/capscript' && chmod 755 '$home/bin/capscript'"
probe=/tmp/vu-cado-cond.probe.$$
printf '#!/bin/sh\necho ran\n' > "$probe"; chown _cado:_cado "$probe"; chmod 700 "$probe"
printf '#!/bin/sh\nprintf "%%s : net_raw :\\n%%s : net_raw :\\n%%s : net_raw : %%s\\n" "%s" /usr/bin/env "%s" "%s" > "$1"\n' \
  "$home/bin/capscript" "$probe" "$(sha256sum "$probe" | cut -d' ' -f1)" > "$editor"
check "scado -e: three lines" 0 "" "$pw
" as "$user" env EDITOR="$editor" scado -e
printf 'echo PWNED; %s -c; exit 0\n' "$inst/bin/caprint" > "$inst/bashenv.sh"; chmod 644 "$inst/bashenv.sh"
check "cado -S: the caller's BASH_ENV does not run in a pre-authorized #! script" 0 "net_raw" "" \
  as "$user" env BASH_ENV="$inst/bashenv.sh" cado -S net_raw -- "$home/bin/capscript"
out=$(as "$user" env FOO=1 PYTHONPATH=/x PERL5OPT=-d BASH_ENV=/x ENV=/x LC_ALL=../../tmp/x LC_TIME=C TERM=xterm \
  LANG=C.UTF-8 TZ=/tmp/x PATH="$inst/evilpath:$inst/bin:/usr/bin:/bin" cado -S net_raw -- /usr/bin/env 2>&1 | sort)
want="HOME=$home
LANG=C.UTF-8
LC_TIME=C
LOGNAME=$user
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SHELL=$(getent passwd "$user" | cut -d: -f7)
TERM=xterm
USER=$user"
[ "$out" = "$want" ] && ok "cado -S: a reset environment (PATH fixed, HOME USER LOGNAME SHELL from passwd, TERM LANG LC_* kept if safe)" \
  || bad "cado -S: a reset environment" "got:" "$out" "want:" "$want"
check "cado -S reads the program as the caller: a file only _cado can read is refused" 2 "" "" \
  as "$user" cado -S net_raw -- "$probe"
printf 'secret\n' > /var/spool/cado/vu-probe; chown root:_cado /var/spool/cado/vu-probe; chmod 640 /var/spool/cado/vu-probe
printf '#!/bin/sh\nprintf "/var/spool/cado/vu-probe : net_raw :\\n" > "$1"\n' > "$editor"
check "scado hashes as the caller: a _cado-readable file in the spool is not read" 255 "" "$pw
" as "$user" env EDITOR="$editor" scado -e
grep -q "vu-probe: Permission denied" "$work/err" && ok "…Permission denied" || bad "…Permission denied" "$(cat "$work/err")"
rm -f /var/spool/cado/vu-probe
as "$user" mkfifo "$home/fifo"
printf '#!/bin/sh\nprintf "%%s : net_raw :\\n" "%s" > "$1"\n' "$home/fifo" > "$editor"
check "scado hashes regular files only: a FIFO named in the file is refused, not waited on" 255 "" "$pw
" timeout 30 runuser -u "$user" -- env -i HOME="$home" USER="$user" SHELL=/bin/sh PATH="$inst/bin:/usr/bin:/bin" LANG=C \
  EDITOR="$editor" scado -e
grep -q "fifo: Permission denied" "$work/err" && ok "…Permission denied" || bad "…Permission denied" "$(cat "$work/err")"
rm -f "$home/fifo"
check "scado -D" 0 "" "" as "$user" scado -D
[ ! -e /var/spool/cado/"$user" ] && ok "…deleted" || bad "…deleted"

# ---- vu with cado: joining a namespace, attaching one to VDE -----------------------------------
cp "$BUILD/bin/vu" "$BUILD/bin/vu-net" "$inst/bin/" && chmod 755 "$inst/bin/vu" "$inst/bin/vu-net"
ip netns add vu-join-t
want_ns=$(ip netns exec vu-join-t readlink /proc/self/ns/net)
check "cado sys_admin -- vu run --net join:NAME: the view is in that namespace" 0 "$want_ns" "$pw
" as "$user" cado sys_admin -- vu run --net join:vu-join-t -- readlink /proc/self/ns/net
check "vu run --net join: without the capability: refused, naming cado" 125 "" "" as "$user" vu run --net join:vu-join-t -- true
grep -q "cado sys_admin" "$work/err" && ok "…the hint names cado" || bad "…the hint names cado" "$(cat "$work/err")"
ip netns delete vu-join-t
ip netns add vu-att-t
swdir=$(as "$user" mktemp -d /tmp/vu-att-sw.XXXXXX)
printf '%s\n' "$pw" | nsenter --net=/run/netns/vu-att-t runuser -u "$user" -- env -i PATH="$inst/bin:/usr/bin:/bin" HOME=/tmp \
  cado net_admin -- vu net attach "switch://$swdir/sw" --ip 10.9.0.2/24 2>"$work/attach.err" & att=$!
for _ in $(seq 50); do ip netns exec vu-att-t ip -o link show vde0 2>/dev/null | grep -q UP && break; sleep 0.1; done
if ip netns exec vu-att-t ip -o link show vde0 2>/dev/null | grep -q UP; then
  ok "cado net_admin -- vu net attach: vde0 up in the (root's) namespace"
  (ip netns exec vu-att-t timeout 10 socat -u TCP-LISTEN:9100,reuseaddr OPEN:"$work/att.out",creat,trunc &)
  as "$user" vu run --net "vde://$swdir/sw" --ip 10.9.0.1/24 -- bash -c 'for i in $(seq 25); do (echo attached > /dev/tcp/10.9.0.2/9100) 2>/dev/null && exit 0; sleep 0.2; done; exit 1'
  sleep 0.2
  [ "$(cat "$work/att.out" 2>/dev/null)" = attached ] && ok "…a view on the same switch reaches it" || bad "…a view on the same switch reaches it" "$(cat "$work/attach.err")"
else
  bad "cado net_admin -- vu net attach" "$(cat "$work/attach.err")"
fi
pkill -TERM -u "$user" -f 'vu net attach' 2>/dev/null; wait $att; rc=$?
expect "vu net attach: SIGTERM detaches, status 0" 0 $rc
for _ in $(seq 20); do [ "$(ip netns exec vu-att-t ip -o link | wc -l)" = 1 ] && break; sleep 0.1; done
[ "$(ip netns exec vu-att-t ip -o link | wc -l)" = 1 ] && ok "…and the tap is gone" || bad "…and the tap is gone" "$(ip netns exec vu-att-t ip -o link)"
ip netns delete vu-att-t
rm -rf "$swdir"

# ---- pam_newnet, pam_usernet, pam_groupnet ----------------------------------------------------
lib=$BUILD/lib/security
printf 'session required %s/pam_newnet.so\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-newnet
printf 'session required %s/pam_newnet.so lodown\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-newnet-lodown
printf 'session required %s/pam_usernet.so\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-usernet
printf 'session required %s/pam_groupnet.so\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-groupnet
host_ns=$(readlink /proc/self/ns/net)
out=$("$PAMSESSION" vu-test-newnet "$user" sh -c 'readlink /proc/self/ns/net; ip -o link show | wc -l; ip -o link show lo' 2>&1)
ns=$(echo "$out" | sed -n 1p)
[ "$ns" != "$host_ns" ] && [ "$(echo "$out" | sed -n 2p)" = 1 ] && echo "$out" | sed -n 3p | grep -q '<LOOPBACK,UP' \
  && ok "pam_newnet: a member gets a fresh network namespace, lo up" || bad "pam_newnet: member" "$out"
out=$("$PAMSESSION" vu-test-newnet-lodown "$user" ip -o link show lo 2>&1)
echo "$out" | grep -q '<LOOPBACK>' && ok "pam_newnet lodown: lo stays down" || bad "pam_newnet lodown" "$out"
out=$("$PAMSESSION" vu-test-newnet "$other" readlink /proc/self/ns/net 2>&1)
[ "$out" = "$host_ns" ] && ok "pam_newnet: others are ignored (host namespace)" || bad "pam_newnet: others" "$out"
ip netns delete "$user" 2>/dev/null
mkdir -p "/etc/netns/$user"
echo "nameserver 192.0.2.99" > "/etc/netns/$user/resolv.conf"
host_resolv=$(cat /etc/resolv.conf 2>/dev/null)
out1=$("$PAMSESSION" vu-test-usernet "$user" sh -c 'readlink /proc/self/ns/net; cat /etc/resolv.conf; ls /sys/class/net | tr "\n" " "' 2>&1)
rc=$?
out2=$("$PAMSESSION" vu-test-usernet "$user" readlink /proc/self/ns/net 2>&1)
[ $rc = 0 ] && [ -e "/run/netns/$user" ] && ok "pam_usernet: /run/netns/$user created" || bad "pam_usernet: created" "rc $rc" "$out1"
[ "$(echo "$out1" | sed -n 1p)" = "$out2" ] && [ "$out2" != "$host_ns" ] && ok "pam_usernet: a second session joins the same namespace" || bad "pam_usernet: same namespace" "$out1" "$out2"
[ "$(echo "$out1" | sed -n 2p)" = "nameserver 192.0.2.99" ] && [ "$(cat /etc/resolv.conf 2>/dev/null)" = "$host_resolv" ] \
  && ok "pam_usernet: /etc/netns/$user/resolv.conf bound over /etc/resolv.conf (host's untouched)" || bad "pam_usernet: resolv.conf" "$out1"
[ "$(echo "$out1" | sed -n 3p)" = "lo " ] && ok "pam_usernet: /sys shows the namespace's interfaces" || bad "pam_usernet: /sys" "$out1"
out=$("$PAMSESSION" vu-test-usernet "$other" readlink /proc/self/ns/net 2>&1)
[ "$out" = "$host_ns" ] && [ ! -e "/run/netns/$other" ] && ok "pam_usernet: others are ignored" || bad "pam_usernet: others" "$out"
printf 'session required %s/pam_usernet.so rootshared\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-usernet-rs
# rootshared runs in mount namespaces of our own (unshare -m: private, then / made rshared as on
# systemd hosts), so that nothing it does to "the host" reaches this machine's.
out=$(unshare -m sh -c 'mount --make-rshared / && "$1" vu-test-usernet-rs "$2" sh -c "cat /etc/resolv.conf; findmnt -no PROPAGATION /"' \
  sh "$PAMSESSION" "$user" 2>&1)
[ "$out" = "nameserver 192.0.2.99
shared" ] && ok "pam_usernet rootshared: / stays shared, /etc/netns still bound" || bad "pam_usernet rootshared" "$out"
out=$(unshare -m sh -c 'b=$(wc -l < /proc/self/mountinfo); "$1" vu-test-usernet-rs "$2" true; a=$(wc -l < /proc/self/mountinfo)
  [ "$a" = "$b" ] || { echo "mounts: $b before, $a after"; cat /proc/self/mountinfo; }' sh "$PAMSESSION" "$user" 2>&1)
[ -z "$out" ] && ok "pam_usernet rootshared under a private /: no mount in the parent namespace" || bad "pam_usernet rootshared under a private /" "$out"
# An /etc entry that is a symlink is covered itself, not what it points to: with rootshared the
# target's mount (here /etc/resolv.conf -> /run/…-like, a file on the shared /) is the host's.
printf 'host\n' > "$work/pamnet-target"; ln -sfn "$work/pamnet-target" /etc/vu-test-pamnet-link
printf 'netns\n' > "/etc/netns/$user/vu-test-pamnet-link"
out=$(unshare -m sh -c 'mount --make-rshared / && "$1" vu-test-usernet-rs "$2" cat /etc/vu-test-pamnet-link; cat "$3/pamnet-target"' \
  sh "$PAMSESSION" "$user" "$work" 2>&1)
[ "$out" = "netns
host" ] && ok "pam_usernet rootshared: a symlink in /etc is covered itself, its target on the host untouched" \
  || bad "pam_usernet rootshared: a symlink in /etc" "$out"
out=$("$PAMSESSION" vu-test-usernet "$user" sh -c 'cat /etc/vu-test-pamnet-link; cat "$1"' sh "$work/pamnet-target" 2>&1)
[ "$out" = "netns
host" ] && ok "pam_usernet: a symlink in /etc is covered itself" || bad "pam_usernet: a symlink in /etc" "$out"
rm -f /etc/vu-test-pamnet-link "/etc/netns/$user/vu-test-pamnet-link"
# /etc/netns/NAME chooses the session's /etc/shadow, sudoers…: only root's, not writable by others.
chown "$user" "/etc/netns/$user"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rc=$?
chown root "/etc/netns/$user"; chmod 0775 "/etc/netns/$user"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rc2=$?
chmod 0755 "/etc/netns/$user"
[ $rc = 3 ] && [ $rc2 = 3 ] && ok "pam_usernet: an /etc/netns/USER the user owns, or group-writable, refuses the session" \
  || bad "pam_usernet: /etc/netns/USER not root's" "user-owned: rc $rc, group-writable: rc $rc2 (want 3, 3)"
# …and so does an entry in it the user could write: a file of theirs, or a root-owned symlink to one.
printf 'x\n' > "/etc/netns/$user/hosts"; chown "$user" "/etc/netns/$user/hosts"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rc=$?
rm -f "/etc/netns/$user/hosts"
as "$user" sh -c "printf 'x\n' > '$work/user-hosts'"; ln -s "$work/user-hosts" "/etc/netns/$user/hosts"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rc2=$?
rm -f "/etc/netns/$user/hosts" "$work/user-hosts"
# A directory entry: everything in it too (here over /etc/vu-test-pamnet-dir, made for the test).
mkdir -p /etc/vu-test-pamnet-dir "/etc/netns/$user/vu-test-pamnet-dir/sub"; echo root > "/etc/netns/$user/vu-test-pamnet-dir/sub/a"
"$PAMSESSION" vu-test-usernet "$user" cat /etc/vu-test-pamnet-dir/sub/a > "$work/dir-ok" 2>/dev/null; rcd=$?
chown "$user" "/etc/netns/$user/vu-test-pamnet-dir/sub/a"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rcd2=$?
rm -rf "/etc/netns/$user/vu-test-pamnet-dir" /etc/vu-test-pamnet-dir
[ $rcd = 0 ] && [ "$(cat "$work/dir-ok")" = root ] && [ $rcd2 = 3 ] && ok "pam_usernet: a directory entry is bound, and refused when a file in it is the user's" \
  || bad "pam_usernet: a directory entry" "root's: rc $rcd ($(cat "$work/dir-ok")), a user's file in it: rc $rcd2 (want 0 root, 3)"
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null; rc3=$?
[ $rc = 3 ] && [ $rc2 = 3 ] && [ $rc3 = 0 ] && ok "pam_usernet: an /etc/netns/USER entry the user could write (or a link to one) refuses the session" \
  || bad "pam_usernet: user-writable entries" "user-owned: rc $rc, link to the user's: rc $rc2 (want 3, 3); clean again: rc $rc3 (want 0)"
# rootshared: the session's mounts reach the parent namespace (that is the option's point), its
# own /sys and /etc do not. Run in a namespace of our own whose / is shared, as on systemd hosts.
# The first session may make /etc a mount point of its own, once (documented, as /run/netns);
# a session already running keeps its own /etc binds.
out=$(unshare -m sh -c '
  mount --make-rshared / && mkdir -p /tmp/vu-rs-mnt.$$ || exit 1
  "$1" vu-test-usernet "$2" sh -c "sleep 1.5; cat /etc/resolv.conf" >"$3/rs-default" 2>&1 & running=$!
  sleep 0.5
  "$1" vu-test-usernet-rs "$2" true || echo "first session refused"
  wait $running
  [ "$(cat "$3/rs-default")" = "nameserver 192.0.2.99" ] || echo "a running session lost its /etc binds: $(cat "$3/rs-default")"
  before=$(wc -l < /proc/self/mountinfo)
  for i in 1 2 3; do "$1" vu-test-usernet-rs "$2" true || echo "session $i refused"; done
  after=$(wc -l < /proc/self/mountinfo)
  [ "$before" = "$after" ] || { echo "mounts: $before before, $after after"; cat /proc/self/mountinfo; }
  grep " - sysfs $2 " /proc/self/mountinfo
  "$1" vu-test-usernet-rs "$2" mount -t tmpfs vu-rs-probe /tmp/vu-rs-mnt.$$
  findmnt -n -o SOURCE /tmp/vu-rs-mnt.$$; umount /tmp/vu-rs-mnt.$$; rmdir /tmp/vu-rs-mnt.$$
' sh "$PAMSESSION" "$user" "$work" 2>&1)
[ "$out" = vu-rs-probe ] && ok "pam_usernet rootshared: nothing of the sessions' /sys and /etc in the parent namespace; their own mounts reach it" \
  || bad "pam_usernet rootshared: no mount leaks into the parent namespace" "$out"
# The lock that serializes first sessions is root's: a user holding a lock on /run/netns holds
# no login up.
ip netns delete "$user" 2>/dev/null
as "$other" flock /run/netns sleep 4 & hold=$!
sleep 0.3
out=$(timeout 3 "$PAMSESSION" vu-test-usernet "$user" readlink /proc/self/ns/net 2>&1); rc=$?
[ $rc = 0 ] && ok "pam_usernet: a user's flock on /run/netns holds no first login up" || bad "pam_usernet: a user's flock on /run/netns" "rc $rc" "$out"
wait $hold
# …nor can a user stop the holder: su and sudo open the session with the caller's real uid, so
# the caller could SIGSTOP them (or ^Z them: SIGTSTP) while they hold the lock, and hold every
# usernet/groupnet login on the host up for as long as they like. While it waits for and holds
# the lock, the session's real uid is root's: the caller's kill is refused. (pam-session under
# setpriv --ruid is su's position: real uid the caller's, effective root.) A first session: one
# of a namespace that exists takes no lock.
ip netns delete "$user" 2>/dev/null
[ -e /run/pam_net.lock ] || install -m 600 /dev/null /run/pam_net.lock
flock /run/pam_net.lock sleep 4 & hold=$!
sleep 0.3
setpriv --ruid "$user" -- "$PAMSESSION" vu-test-usernet "$user" awk '/^Uid:/ {print $2}' /proc/self/status >"$work/ruid" & sess=$!
for _ in $(seq 30); do [ "$(awk '/^Uid:/ {print $2}' "/proc/$sess/status" 2>/dev/null)" = 0 ] && break; sleep 0.05; done
if ! as "$user" kill -STOP "$sess" 2>"$work/kill.err" && grep -qi "not permitted" "$work/kill.err"; then
  ok "pam_usernet: the caller of su cannot stop a session that waits for the lock"
else
  bad "pam_usernet: the caller of su cannot stop a session that waits for the lock" "kill -STOP as $user: $(cat "$work/kill.err")"
  kill -CONT "$sess" 2>/dev/null
fi
wait $hold; wait $sess; rc=$?
[ $rc = 0 ] && [ "$(cat "$work/ruid")" = "$(id -u "$user")" ] && ok "…and the session then opens, with the caller's real uid again" \
  || bad "…and the session then opens, with the caller's real uid again" "rc $rc, real uid $(cat "$work/ruid")"
# A holder no signal stops may still be frozen (su run in a cgroup its caller may freeze, e.g.
# under systemd-run --user): a session of a namespace that exists joins it without the lock,
# and a first session gives up (refused, logged) after a bounded wait instead of waiting for ever.
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null
ip netns delete vpn 2>/dev/null
flock -o /run/pam_net.lock sleep 30 & hold=$!
sleep 0.3
timeout 8 "$PAMSESSION" vu-test-usernet "$user" readlink /proc/self/ns/net >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && ok "pam_usernet: a held lock holds up no session of an existing namespace" || bad "pam_usernet: a held lock holds up no session of an existing namespace" "rc $rc (124: it waited)"
timeout 25 "$PAMSESSION" vu-test-groupnet "$user" true >/dev/null 2>&1; rc=$?
[ $rc = 3 ] && [ ! -e /run/netns/vpn ] && ok "pam_groupnet: a first session refused after a bounded wait for a held lock" \
  || bad "pam_groupnet: a first session refused after a bounded wait for a held lock" "rc $rc (want 3; 124: it waited on)"
pkill -P "$hold" sleep; wait "$hold" 2>/dev/null
# Concurrent first sessions: every one is admitted, all in the same namespace (3 rounds of 90,
# started together: they wait on a lock this shell holds).
refused=0 spread=""
for round in 1 2 3; do
  ip netns delete "$user" 2>/dev/null
  rm -f "$work"/cc.*; exec 9>"$work/cc-go"; flock -x 9
  for i in $(seq 90); do flock -s "$work/cc-go" "$PAMSESSION" vu-test-usernet "$user" readlink /proc/self/ns/net >"$work/cc.$i" 2>&1 & done
  sleep 1; flock -u 9; exec 9>&-; wait
  refused=$((refused + $(grep -L '^net:' "$work"/cc.* | wc -l)))
  [ "$(sort -u "$work"/cc.* | wc -l)" = 1 ] || spread="$spread $(sort "$work"/cc.* | uniq -c | tr '\n' ' ')"
done
[ "$refused" = 0 ] && [ -z "$spread" ] && ok "pam_usernet: 3 x 90 concurrent first sessions, none refused, one namespace each time" \
  || bad "pam_usernet: concurrent first sessions" "$refused of 270 refused" "$spread"
rm -rf /etc/netns/vpn
out=$("$PAMSESSION" vu-test-groupnet "$user" readlink /proc/self/ns/net 2>&1)
[ $? = 0 ] && [ -e /run/netns/vpn ] && [ "$out" != "$host_ns" ] \
  && ok "pam_groupnet: groupnet-vpn -> /run/netns/vpn; a missing /etc/netns/vpn is fine" || bad "pam_groupnet" "$out"
if command -v pamtester >/dev/null; then
  ip netns delete "$user" 2>/dev/null
  out=$(pamtester vu-test-usernet "$user" open_session 2>&1)
  [ $? = 0 ] && [ -e "/run/netns/$user" ] && ok "pamtester open_session with pam_usernet" || bad "pamtester open_session" "$out"
else
  skipped "pamtester" "not installed (scripts/setup.sh installs it)"
fi
printf 'session required %s/pam_usernet.so bogus\nsession optional pam_permit.so\n' "$lib" > /etc/pam.d/vu-test-usernet
"$PAMSESSION" vu-test-usernet "$user" true 2>/dev/null
[ $? = 0 ] && ok "an unknown module option is logged, not fatal" || bad "an unknown module option"

summary
