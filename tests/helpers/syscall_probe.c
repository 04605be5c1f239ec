// syscall-probe WHAT [ARGS] — one system call the libc would not make by itself, for the
// conformance and bypass tests. Prints "ok" or the errno's name, exits 0 either way (1 on
// usage errors), so the output can be compared between backends.
//   openat2 PATH            openat2(AT_FDCWD, PATH, O_RDONLY)
//   io_uring                io_uring_setup(1, …)
//   clone3                  clone3 with no flags (the child exits at once)
//   handle PATH             name_to_handle_at(AT_FDCWD, PATH, …)
//   open_tree PATH          open_tree(AT_FDCWD, PATH, 0)
//   fchmod PATH MODE        open O_RDONLY then fchmod
//   fchown PATH             open O_RDONLY then fchown(fd, getuid(), -1)
//   fsetxattr PATH          open O_RDONLY then fsetxattr user.vu
//   futimens PATH           open O_RDONLY then futimens(fd, NULL)
//   threads PATH N          N threads each open and read PATH; prints the bytes read in total
//   statfs-ro PATH          prints "ro" or "rw" from statfs f_flags
//   inotify DIR             watches DIR, creates DIR/inotify-probe, prints the event's name
//   dir PATH                the DIR API: entries, rewinddir, telldir/seekdir, readdir_r, fdopendir
//   execl l|p|e|v|s CMD     runs `sh -c CMD` through execl, execlp, execle, execvp or posix_spawnp
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int report(long rc) {
  if (rc < 0) printf("%s\n", strerrorname_np(errno));
  else printf("ok\n");
  return 0;
}

static const char* thread_path;
static void* reader(void* arg) {
  long* total = arg;
  char buf[4096];
  for (int i = 0; i < 50; ++i) {
    int fd = open(thread_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) __atomic_add_fetch(total, n, __ATOMIC_RELAXED);
    close(fd);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: syscall-probe WHAT [ARGS]\n");
    return 1;
  }
  const char* w = argv[1];
  const char* p = argc > 2 ? argv[2] : ".";
  if (!strcmp(w, "openat2")) {
    struct open_how how = {.flags = O_RDONLY};
    long fd = syscall(SYS_openat2, AT_FDCWD, p, &how, sizeof how);
    return report(fd);
  }
  if (!strcmp(w, "io_uring")) {
    char params[120] = {0};
    return report(syscall(SYS_io_uring_setup, 1, params));
  }
  if (!strcmp(w, "clone3")) {
    struct { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } args = {0};
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return report(pid);
  }
  if (!strcmp(w, "handle")) {
    char buf[sizeof(struct file_handle) + 128];
    struct file_handle* fh = (struct file_handle*)buf;
    fh->handle_bytes = 128;
    int mount_id;
    return report(syscall(SYS_name_to_handle_at, AT_FDCWD, p, fh, &mount_id, 0));
  }
  if (!strcmp(w, "open_tree")) return report(syscall(SYS_open_tree, AT_FDCWD, p, 0));
  if (!strcmp(w, "threads")) {
    thread_path = p;
    int n = argc > 3 ? atoi(argv[3]) : 4;
    pthread_t t[16];
    long total = 0;
    if (n > 16) n = 16;
    for (int i = 0; i < n; ++i) pthread_create(&t[i], NULL, reader, &total);
    for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
    printf("%ld\n", total);
    return 0;
  }
  if (!strcmp(w, "statfs-ro")) {
    struct statvfs sv;
    if (statvfs(p, &sv) < 0) return report(-1);
    printf("%s\n", (sv.f_flag & ST_RDONLY) ? "ro" : "rw");
    return 0;
  }
  if (!strcmp(w, "execl") && argc > 3) {
    extern char** environ;
    const char* cmd = argv[3];
    fflush(stdout);
    switch (p[0]) {
      case 'l': execl("/bin/sh", "sh", "-c", cmd, (char*)NULL); break;
      case 'p': execlp("sh", "sh", "-c", cmd, (char*)NULL); break;
      case 'e': execle("/bin/sh", "sh", "-c", cmd, (char*)NULL, environ); break;
      case 'v': {
        char* const args[] = {"sh", "-c", (char*)cmd, NULL};
        execvp("sh", args);
        break;
      }
      case 's': {
        char* const args[] = {"sh", "-c", (char*)cmd, NULL};
        pid_t pid;
        if (posix_spawnp(&pid, "sh", NULL, NULL, args, environ) != 0) return report(-1);
        int st;
        waitpid(pid, &st, 0);
        return 0;
      }
    }
    return report(-1);
  }
  if (!strcmp(w, "dir")) {
    DIR* d = opendir(p);
    if (!d) return report(-1);
    int n = 0;
    long third_pos = -1;
    char third[256] = "";
    struct dirent* e;
    while ((e = readdir(d))) {
      if (++n == 2) third_pos = telldir(d);
      if (n == 3) snprintf(third, sizeof third, "%s", e->d_name);
    }
    rewinddir(d);
    int again = 0;
    while (readdir(d)) ++again;
    const char* seek = "seek n/a";
    if (third_pos >= 0) {
      seekdir(d, third_pos);
      e = readdir(d);
      seek = e && !strcmp(e->d_name, third) ? "seek ok" : "seek BAD";
    }
    struct dirent ent, *res;
    rewinddir(d);
    int r = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    while (readdir_r(d, &ent, &res) == 0 && res) ++r;
#pragma GCC diagnostic pop
    int fd = dup(dirfd(d));
    closedir(d);
    lseek(fd, 0, SEEK_SET);
    DIR* f = fdopendir(fd);
    int viafd = 0;
    while (f && readdir(f)) ++viafd;
    if (f) closedir(f);
    DIR* bad = fdopendir(open("/dev/null", O_RDONLY | O_CLOEXEC));
    printf("%d %d %d %d %s fdopendir(file): %s\n", n, again, r, viafd, seek, bad ? "ok" : strerrorname_np(errno));
    return 0;
  }
  if (!strcmp(w, "inotify")) {
    int in = inotify_init1(IN_CLOEXEC);
    if (in < 0 || inotify_add_watch(in, p, IN_CREATE) < 0) return report(-1);
    char file[4096];
    snprintf(file, sizeof file, "%s/inotify-probe", p);
    int f = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) return report(-1);
    close(f);
    unlink(file);
    char buf[4096] __attribute__((aligned(8)));
    ssize_t n = read(in, buf, sizeof buf);
    if (n <= 0) return report(-1);
    printf("%s\n", ((struct inotify_event*)buf)->name);
    return 0;
  }
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return report(-1);
  if (!strcmp(w, "fchmod")) return report(fchmod(fd, (mode_t)strtol(argc > 3 ? argv[3] : "644", NULL, 8)));
  if (!strcmp(w, "fchown")) return report(fchown(fd, getuid(), (gid_t)-1));
  if (!strcmp(w, "fsetxattr")) return report(fsetxattr(fd, "user.vu", "1", 1, 0));
  if (!strcmp(w, "futimens")) return report(futimens(fd, NULL));
  fprintf(stderr, "syscall-probe: unknown probe %s\n", w);
  return 1;
}
