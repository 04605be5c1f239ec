#!/usr/bin/env bash
# hosts_test.sh VU DENY_USERNS DENY_MOUNT DENY_CONTAINER — the three hosts where user namespaces
# fail, each imitated by a seccomp filter of tests/helpers (no global sysctl is touched):
#   userns denied      Docker's default profile            (deny-userns, as the test user)
#   no mounts          Ubuntu >= 23.10's AppArmor rule     (deny-mount, as the test user)
#   container          every mount denied to everyone, setuid helpers included: the filter is
#                      installed by root without no_new_privs, then the test user's ids
#                      (deny-container, run as root)
# On each, `vu run` (auto) must give the view the ns backend gives on an ordinary host: the same
# output and status for the same command line. Run as root (the container needs it); the views
# run as the unprivileged test user.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh" || exit 1
root_run_setup "the container host installs its filter as root" "" "$@"

on_host() {
  case $1 in
    ordinary) shift; as_user "$@" ;;
    "userns denied") shift; as_user "$bin/deny-userns" "$@" ;;
    "no mounts") shift; as_user "$bin/deny-mount" "$@" ;;
    container) shift; "$bin/deny-container" "$user" "${VIEW_ENV[@]}" "$@" ;;
  esac
}

W=$work/fx
as_user mkdir -p "$W/data/sub"
as_user sh -c "echo hello > $W/data/f; echo 'nameserver 192.0.2.53' > $W/r; ln -s ../f $W/data/sub/up"

# same NAME VU-OPTIONS… -- COMMAND… — auto on each host prints what ns prints on an ordinary one.
same() {
  local name=$1; shift
  local want want_rc got rc host
  want=$(on_host ordinary "$VU" run --backend=ns --net host "$@" 2>/dev/null); want_rc=$?
  for host in "userns denied" "no mounts" container; do
    got=$(on_host "$host" "$VU" run --net host "$@" 2>"$work/err"); rc=$?
    if [ "$got" = "$want" ] && [ $rc = $want_rc ]; then ok "$host: $name"
    else bad "$host: $name" "status $rc (ns on an ordinary host: $want_rc)" "got:  $(printf '%s' "$got" | head -c 300)" \
      "want: $(printf '%s' "$want" | head -c 300)" "stderr: $(head -c 300 "$work/err")"; fi
  done
}

same "identity" -- sh -c 'id -u; id -g'
same "--root" --root -- sh -c 'id -u; id -g; stat -c %u "$HOME"; stat -c "%u %g" /etc/passwd'
same "--hostname" --hostname box -- uname -n
same "--tmpfs on a missing target" --tmpfs /vu-scratch -- sh -c 'echo a > /vu-scratch/a; cat /vu-scratch/a; ls /vu-scratch'
same "--bind a file over /etc/resolv.conf" --bind "$W/r:/etc/resolv.conf" -- cat /etc/resolv.conf
same "read-only bind" --bind "$W/data:/mnt:ro" -- sh -c 'cat /mnt/sub/up; touch /mnt/x 2>/dev/null; echo "touch: $?"'
same "missing ancestors of a target" --bind "$W/data:/vu-missing/a/b" -- sh -c 'ls /vu-missing; cat /vu-missing/a/b/f'
same "exit status" -- sh -c 'exit 7'
same "death by a signal" -- sh -c 'kill -TERM $$'

# The default network: pvm has none of its own yet, so the view falls back to the host's; the
# command must still run (not fail on /sys or a tap), and -v must say why.
for host in "userns denied" "no mounts" container; do
  out=$(on_host "$host" "$VU" run -v -- sh -c 'echo ran' 2>"$work/err"); rc=$?
  if [ $rc = 0 ] && [ "$out" = ran ] && grep -q 'partial-VM backend' "$work/err"; then
    ok "$host: the default view runs on pvm and -v says why"
  else bad "$host: the default view" "status $rc: $out" "stderr: $(head -c 400 "$work/err")"; fi
  p=$(on_host "$host" "$VU" probe 2>&1 | grep '^vu run would use')
  case "$p" in *pvm*) ok "$host: vu probe agrees (pvm)" ;; *) bad "$host: vu probe" "$p" ;; esac
done
# In the container even setuid helpers are refused: squashfuse mounts through the setuid
# fusermount3 on an ordinary host, and cannot in the container.
if command -v squashfuse >/dev/null && command -v mksquashfs >/dev/null; then
  as_user mkdir -p "$W/mp" "$W/sq"
  as_user sh -c "echo x > $W/sq/x; mksquashfs $W/sq $W/img.sqfs -quiet -noappend >/dev/null"
  if on_host ordinary sh -c "squashfuse $W/img.sqfs $W/mp && cat $W/mp/x >/dev/null && fusermount3 -u $W/mp" 2>/dev/null; then
    if on_host container sh -c "squashfuse $W/img.sqfs $W/mp" 2>/dev/null; then
      bad "container: the setuid fusermount3 mounted"; on_host ordinary fusermount3 -u "$W/mp"
    else ok "container: the setuid fusermount3 is refused too"; fi
  else skipped "container: setuid fusermount3" "squashfuse cannot mount for $user on this host either"; fi
fi
summary
