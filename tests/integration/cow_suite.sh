# cow_suite.sh — sourced by fs_test.sh (ns: kernel overlayfs and vu-cowfs) and fs_pvm_test.sh
# (the pvm monitor's copy-on-write): one lower tree and one transcript, so every implementation
# of --cow runs exactly the same commands and their outputs can be compared line by line.
# A lower tree the user owns (so both implementations may serve it).
make_lower() {
  rm -rf "$1" && mkdir -p "$1/d/sub" "$1/e/deep" "$1/gone" "$1/mv"
  echo hello > "$1/d/f"; echo one > "$1/e/deep/x"; echo keep > "$1/g"; echo ro > "$1/ro"
  chmod 444 "$1/ro"; ln -s d/f "$1/link"; echo moved > "$1/mv/m"; echo x > "$1/gone/y"
}
# The transcript: every line must be the same under both implementations.
suite='
set -u
cd "$T"
show() { printf "%s: %s\n" "$1" "$(eval "$2" 2>&1 | tr "\n" " ")"; }
show read "cat d/f; readlink link; cat link"
show owner "stat -c \"%u:%g %a %F\" d/f d ro link"
show append "echo more >> d/f && cat d/f"
show create "echo new > n && cat n"
show rm "rm g && ls"
show rm-dir "rm -r e && ls"
show mkdir-over "mkdir e && ls -A e"
show rmdir-empty "rmdir d/sub && ls d"
show rename-file "mv d/f d/f2 && ls d && cat d/f2"
show rename-dir "mv mv mv2 && ls mv2 && cat mv2/m && ls"
show rename-new-dir "mkdir nd && echo z > nd/z && mv nd nd2 && cat nd2/z"
show hardlink "ln n n2 && test n -ef n2 && echo same-inode && cat n2"
show chmod "chmod 600 n && stat -c %a n"
show chown-self "chown $(id -u):$(id -g) n && echo done"
show chown-other "chown 4242 n; echo status \$?"
show ro-write "echo w >> ro; echo status \$?"
show truncate "truncate -s 2 d/f2 && od -c d/f2 | head -1"
show symlink-new "ln -s n s && readlink s && cat s"
show replace-file-by-dir "rm n2 && mkdir n2 && ls -A n2"
show listing "ls -A . | tr \"\n\" \" \""
show gone "rm -rf gone && ls -A"
if command -v setfattr >/dev/null; then
  show xattr-copy-up "setfattr -n user.vu -v one d/f2 && getfattr --only-values -n user.vu d/f2"
  show xattr-remove "setfattr -x user.vu d/f2 && getfattr -d d/f2; echo status \$?"
  show xattr-private "getfattr -d -m - e; setfattr -n user.overlay.opaque -v n e; getfattr --only-values -n user.overlay.opaque e; echo; ls -A e"
fi
show recreate-gone "mkdir gone && touch gone/new && ls -A gone"
# Deeper than PATH_MAX below the mount root (22 names of 200; bash: dash'"'"'s cd stops there):
# relative calls from the working directory work as on any filesystem (a FUSE daemon that
# rebuilt paths from its root could not serve them). $DEEP: deep.sh of fs_test.sh.
if [ -n "${DEEP:-}" ]; then show beyond-path-max "bash \"\$DEEP\""; fi
'
