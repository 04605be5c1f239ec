// loop-probe WHAT [ARGS] — the work and the hostile input of the pvm robustness loops
// (tests/integration/loop_pvm.sh).
//   hostile DIR      system calls the monitor traps, with bad pointers and lengths: NULL, an
//                    unmapped page, huge lengths, a path of PATH_MAX+1 bytes, a name that runs
//                    into an unmapped page, odd MSG_* flags. DIR is a directory of the view
//                    where paths trap (a --cow or --bind target). Prints one line per call,
//                    "NAME ok" or "NAME ERRNO-NAME", then "done"; exits 0 when it got that far
//                    (each call returned to it: nothing hung, nothing killed it).
//   echo N           N round trips over the view's loopback: a TCP echo server in a child, the
//                    client mixing write, send, sendmsg (3 iovecs) and sendto without a name;
//                    then N UDP datagrams with a name each way (sendto, sendmsg, recvfrom,
//                    recvmsg: every one traps and is translated). Exits 0 when every byte came
//                    back as sent, 1 otherwise (with a message).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char* name, long rc) {
  if (rc < 0) printf("%s %s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  else printf("%s ok\n", name);
  fflush(stdout);
}
#define TRY(name, call) show(name, (long)(call))

// A page whose successor is unmapped: a string placed at its end runs into the hole.
static char* edge_page(void) {
  long pg = sysconf(_SC_PAGESIZE);
  char* p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(1); }
  munmap(p + pg, pg);
  return p;
}

static int hostile(const char* dir) {
  long pg = sysconf(_SC_PAGESIZE);
  char* page = edge_page();
  void* hole = page + pg;  // unmapped
  void* bad = (void*)1;
  char path[PATH_MAX + 64];
  int d = open(dir, O_RDONLY | O_DIRECTORY);
  if (d < 0) { perror(dir); return 1; }

  // Paths: NULL, unmapped, PATH_MAX+1 long, a name running into the hole, one ending just
  // before it.
  TRY("openat-null", syscall(SYS_openat, d, NULL, O_RDONLY));
  TRY("openat-bad", syscall(SYS_openat, d, bad, O_RDONLY));
  TRY("openat-hole", syscall(SYS_openat, d, hole, O_RDONLY));
  memset(path, 'a', sizeof path);
  path[PATH_MAX + 1] = 0;
  TRY("openat-pathmax+1", syscall(SYS_openat, d, path, O_RDONLY));
  TRY("openat-pathmax+1-creat", syscall(SYS_openat, d, path, O_WRONLY | O_CREAT | O_EXCL, 0600));
  snprintf(path, sizeof path, "%s/", dir);
  size_t n = strlen(path);
  memset(path + n, 'b', PATH_MAX - n - 1);
  path[PATH_MAX - 1] = 0;  // PATH_MAX - 1 bytes: as long as a path may be
  TRY("openat-pathmax-1", syscall(SYS_openat, AT_FDCWD, path, O_RDONLY));
  char* straddle = page + pg - 3;
  memcpy(straddle, "abc", 3);  // no NUL before the hole
  TRY("openat-straddle", syscall(SYS_openat, d, straddle, O_RDONLY));
  TRY("openat-straddle-creat", syscall(SYS_openat, d, straddle, O_WRONLY | O_CREAT, 0600));
  TRY("mkdirat-straddle", syscall(SYS_mkdirat, d, straddle, 0700));
  TRY("unlinkat-straddle", syscall(SYS_unlinkat, d, straddle, 0));
  TRY("renameat-straddle", syscall(SYS_renameat, d, straddle, d, "x"));
  TRY("renameat-bad-new", syscall(SYS_renameat, d, ".", d, hole));
  TRY("linkat-straddle", syscall(SYS_linkat, d, straddle, d, straddle, 0));
  TRY("symlinkat-bad", syscall(SYS_symlinkat, hole, d, "sl"));
  TRY("readlinkat-bad-buf", syscall(SYS_readlinkat, d, "sl", hole, 100));
  TRY("readlinkat-huge-len", syscall(SYS_readlinkat, d, "sl", page, (size_t)-1));
  memcpy(page + pg - 2, "x", 2);  // "x\0" ending at the page's last byte: a valid name
  TRY("openat-at-edge", syscall(SYS_openat, d, page + pg - 2, O_RDONLY));
  TRY("newfstatat-bad-buf", syscall(SYS_newfstatat, d, ".", hole, 0));
  TRY("newfstatat-null-buf", syscall(SYS_newfstatat, d, ".", NULL, 0));
  TRY("newfstatat-bad-flags", syscall(SYS_newfstatat, d, ".", page, -1));
  TRY("statx-bad-buf", syscall(SYS_statx, d, ".", 0, 0xfff, hole));
  TRY("faccessat-bad", syscall(SYS_faccessat, d, hole, R_OK));
  TRY("fchmodat-straddle", syscall(SYS_fchmodat, d, straddle, 0600));
  TRY("utimensat-bad-times", syscall(SYS_utimensat, d, ".", hole, 0));
  TRY("getxattr-bad-buf", syscall(SYS_getxattr, dir, "user.x", hole, 4096));
  TRY("setxattr-huge", syscall(SYS_setxattr, dir, "user.x", page, (size_t)1 << 30, 0));
  TRY("setxattr-straddle-name", syscall(SYS_setxattr, dir, straddle, page, 1, 0));
  TRY("statfs-bad", syscall(SYS_statfs, dir, hole));
  TRY("chdir-null", syscall(SYS_chdir, NULL));
  TRY("chdir-straddle", syscall(SYS_chdir, straddle));
  TRY("openat-opath-hole", syscall(SYS_openat, d, hole, O_PATH));
  TRY("openat-opath-straddle", syscall(SYS_openat, d, straddle, O_PATH));
  TRY("openat2-huge-size", syscall(SYS_openat2, d, ".", page, (size_t)1 << 30));
  TRY("openat2-bad-how", syscall(SYS_openat2, d, ".", hole, 24));
  TRY("getcwd-bad", syscall(SYS_getcwd, hole, 4096));
  TRY("getcwd-huge", syscall(SYS_getcwd, page, (size_t)-1));
  TRY("uname-bad", syscall(SYS_uname, hole));
  TRY("getgroups-bad", syscall(SYS_getgroups, 64, hole));
  TRY("getgroups-neg", syscall(SYS_getgroups, -1, page));

  // Directory listings: no buffer, a buffer running into the hole, lengths 0, 1, huge.
  TRY("getdents64-null", syscall(SYS_getdents64, d, NULL, 4096));
  TRY("getdents64-hole", syscall(SYS_getdents64, d, hole, 4096));
  lseek(d, 0, SEEK_SET);
  TRY("getdents64-edge", syscall(SYS_getdents64, d, page + pg - 64, 4096));
  lseek(d, 0, SEEK_SET);
  TRY("getdents64-zero", syscall(SYS_getdents64, d, page, 0));
  TRY("getdents64-one", syscall(SYS_getdents64, d, page, 1));
  lseek(d, 0, SEEK_SET);
  TRY("getdents64-huge", syscall(SYS_getdents64, d, page, (size_t)1 << 31));
  lseek(d, 0, SEEK_SET);
  TRY("getdents64-huge2", syscall(SYS_getdents64, d, page, (size_t)-1));
  TRY("getdents64-badfd", syscall(SYS_getdents64, 9999, page, 4096));

  // Sockets: names NULL, unmapped, running into the hole, with lengths 0, 1, huge, negative.
  int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
  int x = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(0x7f000001)};
  char* sedge = page + pg - 8;  // a sockaddr_in cut by the hole
  memcpy(sedge, &sin, 8);
  TRY("connect-null", syscall(SYS_connect, t, NULL, 16));
  TRY("connect-hole", syscall(SYS_connect, t, hole, 16));
  TRY("connect-edge", syscall(SYS_connect, t, sedge, 16));
  TRY("connect-len0", syscall(SYS_connect, t, &sin, 0));
  TRY("connect-len1", syscall(SYS_connect, t, &sin, 1));
  TRY("connect-huge", syscall(SYS_connect, t, &sin, 1 << 30));
  TRY("connect-neg", syscall(SYS_connect, t, &sin, -1));
  TRY("connect-unix-hole", syscall(SYS_connect, x, hole, 110));
  TRY("connect-unix-edge", syscall(SYS_connect, x, page + pg - 4, 110));
  TRY("bind-null", syscall(SYS_bind, u, NULL, 16));
  TRY("bind-edge", syscall(SYS_bind, u, sedge, 16));
  TRY("bind-huge", syscall(SYS_bind, u, &sin, 1 << 30));
  TRY("bind-unix-straddle", syscall(SYS_bind, x, page + pg - 5, 5));
  TRY("getsockname-null-len", syscall(SYS_getsockname, u, &sin, NULL));
  TRY("getsockname-hole-len", syscall(SYS_getsockname, u, &sin, hole));
  int neg = -1;
  TRY("getsockname-neg-len", syscall(SYS_getsockname, u, &sin, &neg));
  socklen_t big = 1 << 30;
  TRY("getsockname-hole-addr", syscall(SYS_getsockname, u, hole, &big));
  TRY("getpeername-null", syscall(SYS_getpeername, t, NULL, NULL));
  TRY("sendto-null-name", syscall(SYS_sendto, u, "x", 1, 0, NULL, 16));
  TRY("sendto-hole-name", syscall(SYS_sendto, u, "x", 1, 0, hole, 16));
  TRY("sendto-edge-name", syscall(SYS_sendto, u, "x", 1, 0, sedge, 16));
  TRY("sendto-huge-namelen", syscall(SYS_sendto, u, "x", 1, 0, &sin, 1 << 30));
  TRY("sendto-neg-namelen", syscall(SYS_sendto, u, "x", 1, 0, &sin, -1));
  TRY("sendto-hole-buf", syscall(SYS_sendto, u, hole, 1, 0, &sin, sizeof sin));
  TRY("sendto-huge-buf", syscall(SYS_sendto, u, page, (size_t)-1, 0, &sin, sizeof sin));
  TRY("sendto-all-flags", syscall(SYS_sendto, u, "x", 1, -1, &sin, sizeof sin));
  TRY("sendto-fastopen", syscall(SYS_sendto, t, "x", 1, MSG_FASTOPEN, &sin, sizeof sin));
  TRY("sendto-oob", syscall(SYS_sendto, u, "x", 1, MSG_OOB | MSG_DONTWAIT, &sin, sizeof sin));
  struct iovec iov[3] = {{"a", 1}, {hole, 10}, {page, 4}};
  struct msghdr m = {.msg_name = &sin, .msg_namelen = sizeof sin, .msg_iov = iov, .msg_iovlen = 3};
  TRY("sendmsg-null", syscall(SYS_sendmsg, u, NULL, 0));
  TRY("sendmsg-hole", syscall(SYS_sendmsg, u, hole, 0));
  TRY("sendmsg-edge", syscall(SYS_sendmsg, u, page + pg - 16, 0));
  TRY("sendmsg-hole-iov-data", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_iov = hole;
  TRY("sendmsg-hole-iov", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_iov = NULL;
  TRY("sendmsg-null-iov", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  struct iovec wrap[2] = {{page, SIZE_MAX}, {page, 2}};
  m.msg_iov = wrap; m.msg_iovlen = 2;
  TRY("sendmsg-iov-wrap", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  struct iovec wrap2[2] = {{page, (size_t)SSIZE_MAX}, {page, (size_t)SSIZE_MAX}};
  m.msg_iov = wrap2;
  TRY("sendmsg-iov-ssize-max", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_iov = iov; m.msg_iovlen = (size_t)1 << 40;
  TRY("sendmsg-iovlen-huge", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_iovlen = 1025;
  TRY("sendmsg-iovlen-1025", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  iov[1].iov_base = page; m.msg_iovlen = 3;
  m.msg_name = hole;
  TRY("sendmsg-hole-name", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_name = sedge;
  TRY("sendmsg-edge-name", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_name = &sin; m.msg_namelen = 0xffffffffu;
  TRY("sendmsg-huge-namelen", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_namelen = sizeof sin; m.msg_control = hole; m.msg_controllen = 64;
  TRY("sendmsg-hole-control", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_control = page; m.msg_controllen = (size_t)-1;
  TRY("sendmsg-huge-control", syscall(SYS_sendmsg, u, &m, MSG_DONTWAIT));
  m.msg_control = NULL; m.msg_controllen = 0;
  TRY("sendmsg-all-flags", syscall(SYS_sendmsg, u, &m, -1));
  TRY("sendmsg-fastopen", syscall(SYS_sendmsg, t, &m, MSG_FASTOPEN | MSG_DONTWAIT));
  TRY("sendmsg-zerocopy", syscall(SYS_sendmsg, u, &m, MSG_ZEROCOPY | MSG_DONTWAIT));
  struct mmsghdr mm[2] = {{.msg_hdr = m}, {.msg_hdr = m}};
  mm[1].msg_hdr.msg_name = hole;
  TRY("sendmmsg-second-hole", syscall(SYS_sendmmsg, u, mm, 2, MSG_DONTWAIT));
  TRY("sendmmsg-huge-vlen", syscall(SYS_sendmmsg, u, mm, 1u << 31, MSG_DONTWAIT));
  TRY("sendmmsg-hole", syscall(SYS_sendmmsg, u, hole, 2, MSG_DONTWAIT));
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  memset(un.sun_path, 'u', sizeof un.sun_path);  // no NUL
  TRY("sendto-unix-unterminated", syscall(SYS_sendto, x, "x", 1, 0, &un, sizeof un));
  TRY("connect-unix-unterminated", syscall(SYS_connect, x, &un, sizeof un));
  socklen_t fl = 16;
  TRY("recvfrom-hole-name", syscall(SYS_recvfrom, u, page, 16, MSG_DONTWAIT, hole, &fl));
  TRY("recvfrom-hole-len", syscall(SYS_recvfrom, u, page, 16, MSG_DONTWAIT, &sin, hole));
  TRY("recvmsg-null", syscall(SYS_recvmsg, u, NULL, MSG_DONTWAIT));
  TRY("recvmsg-hole", syscall(SYS_recvmsg, u, hole, MSG_DONTWAIT));
  m.msg_name = hole;
  TRY("recvmsg-hole-name", syscall(SYS_recvmsg, u, &m, MSG_DONTWAIT));
  TRY("recvmsg-all-flags", syscall(SYS_recvmsg, u, &m, -1));
  TRY("accept-hole", syscall(SYS_accept4, t, hole, hole, SOCK_NONBLOCK));
  TRY("setsockopt-huge", syscall(SYS_setsockopt, t, SOL_SOCKET, SO_BINDTODEVICE, page, 1 << 30));

  // mount(2) (the view's FUSE programs' call): NULL, unmapped, long names, bad data.
  TRY("mount-null", syscall(SYS_mount, NULL, NULL, NULL, 0, NULL));
  TRY("mount-hole-target", syscall(SYS_mount, "x", hole, "fuse", 0, NULL));
  TRY("mount-fuse-hole-data", syscall(SYS_mount, "x", dir, "fuse", 0, hole));
  TRY("mount-fuse-edge-data", syscall(SYS_mount, "x", dir, "fuse", 0, page + pg - 4));
  TRY("mount-fuse-bad-fd", syscall(SYS_mount, "x", dir, "fuse", 0, "fd=999999,rootmode=40000,user_id=0,group_id=0"));
  TRY("mount-fuse-neg-fd", syscall(SYS_mount, "x", dir, "fuse.x", 0, "fd=-1,rootmode=40000"));
  TRY("mount-fuse-huge-fd", syscall(SYS_mount, "x", dir, "fuse", 0, "fd=99999999999999999999999,rootmode=40000"));
  TRY("mount-fuse-straddle-type", syscall(SYS_mount, "x", dir, straddle, 0, NULL));
  TRY("mount-pathmax+1", syscall(SYS_mount, "x", path, "fuse", 0, NULL));
  TRY("umount2-hole", syscall(SYS_umount2, hole, 0));
  TRY("umount2-straddle", syscall(SYS_umount2, straddle, MNT_DETACH));

  // execve: NULL, unmapped, a straddling path, a bad argv (in a child: a success replaces it).
  const char* ev[][2] = {{"execve-null", NULL}, {"execve-hole", hole}, {"execve-straddle", straddle}};
  for (int i = 0; i < 3; i++) {
    pid_t p = fork();
    if (p == 0) { syscall(SYS_execve, ev[i][1], NULL, NULL); _exit(errno); }
    int st = 0;
    waitpid(p, &st, 0);
    errno = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    show(ev[i][0], WIFEXITED(st) ? -1 : 0);
  }
  pid_t p = fork();
  if (p == 0) { syscall(SYS_execve, "/bin/true", hole, hole); _exit(errno); }
  int st = 0;
  waitpid(p, &st, 0);
  errno = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  show("execve-hole-argv", WIFEXITED(st) && WEXITSTATUS(st) ? -1 : 0);
  printf("done\n");
  return 0;
}

static int fail(const char* what) { fprintf(stderr, "loop-probe echo: %s: %s\n", what, strerror(errno)); return 1; }

static int full_write(int s, const char* b, size_t n, int how) {
  while (n) {
    ssize_t w;
    if (how == 0) w = write(s, b, n);
    else if (how == 1) w = send(s, b, n, 0);
    else if (how == 2) {
      size_t a = n / 3, c = n / 3;
      struct iovec v[3] = {{(void*)b, a}, {(void*)(b + a), c}, {(void*)(b + a + c), n - a - c}};
      struct msghdr m = {.msg_iov = v, .msg_iovlen = 3};
      w = sendmsg(s, &m, 0);
    } else w = sendto(s, b, n, 0, NULL, 0);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    b += w; n -= (size_t)w;
  }
  return 0;
}

static int echo(int n) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t al = sizeof a;
  if (l < 0 || bind(l, (void*)&a, sizeof a) || listen(l, 4) || getsockname(l, (void*)&a, &al)) return fail("listen");
  pid_t srv = fork();
  if (srv == 0) {
    int c = accept(l, NULL, NULL);
    char b[65536];
    ssize_t r;
    while (c >= 0 && (r = read(c, b, sizeof b)) > 0)
      if (full_write(c, b, (size_t)r, 0)) _exit(1);
    _exit(0);
  }
  close(l);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c, (void*)&a, sizeof a)) return fail("connect");
  static char out[40000], in[40000];
  for (int i = 0; i < n; i++) {
    size_t len = 1 + (size_t)(rand() % (int)sizeof out);
    for (size_t k = 0; k < len; k++) out[k] = (char)(rand() & 0xff);
    if (full_write(c, out, len, i % 4)) return fail("send");
    size_t got = 0;
    while (got < len) {
      ssize_t r = recv(c, in + got, len - got, 0);
      if (r <= 0) return fail("recv");
      got += (size_t)r;
    }
    if (memcmp(in, out, len)) { fprintf(stderr, "loop-probe echo: round %d: bytes differ\n", i); return 1; }
  }
  close(c);
  int st;
  waitpid(srv, &st, 0);
  // UDP, a name on every datagram: sendto/sendmsg/recvfrom/recvmsg all trap.
  int u1 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), u2 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in b1 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)}, b2 = b1, from;
  socklen_t l1 = sizeof b1, l2 = sizeof b2, fl;
  if (bind(u1, (void*)&b1, sizeof b1) || bind(u2, (void*)&b2, sizeof b2) || getsockname(u1, (void*)&b1, &l1) ||
      getsockname(u2, (void*)&b2, &l2))
    return fail("udp bind");
  for (int i = 0; i < n; i++) {
    size_t len = 1 + (size_t)(rand() % 1400);
    for (size_t k = 0; k < len; k++) out[k] = (char)(rand() & 0xff);
    ssize_t w;
    if (i % 2) w = sendto(u1, out, len, 0, (void*)&b2, sizeof b2);
    else {
      struct iovec v[2] = {{out, len / 2}, {out + len / 2, len - len / 2}};
      struct msghdr m = {.msg_name = &b2, .msg_namelen = sizeof b2, .msg_iov = v, .msg_iovlen = 2};
      w = sendmsg(u1, &m, 0);
    }
    if (w != (ssize_t)len) return fail("udp send");
    ssize_t r;
    fl = sizeof from;
    if (i % 2) r = recvfrom(u2, in, sizeof in, 0, (void*)&from, &fl);
    else {
      struct iovec v = {in, sizeof in};
      struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &v, .msg_iovlen = 1};
      r = recvmsg(u2, &m, 0);
      fl = m.msg_namelen;
    }
    if (r != (ssize_t)len || memcmp(in, out, len)) { fprintf(stderr, "loop-probe echo: datagram %d differs\n", i); return 1; }
    if (fl != sizeof from || from.sin_port != b1.sin_port || from.sin_addr.s_addr != b1.sin_addr.s_addr) {
      fprintf(stderr, "loop-probe echo: datagram %d: sender %s:%d, want the view's %s:%d\n", i, inet_ntoa(from.sin_addr),
              ntohs(from.sin_port), "127.0.0.1", ntohs(b1.sin_port));
      return 1;
    }
  }
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : (fprintf(stderr, "loop-probe echo: server failed\n"), 1);
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && !strcmp(argv[1], "hostile")) return hostile(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "echo")) { srand((unsigned)getpid()); return echo(atoi(argv[2])); }
  fprintf(stderr, "usage: loop-probe hostile DIR | echo N\n");
  return 2;
}
