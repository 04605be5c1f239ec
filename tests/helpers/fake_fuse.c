// fake-fuse MODE /dev/fd/N|MOUNTPOINT — a FUSE program for the failure paths of the pvm
// backend's FUSE serving (pvm/fuse_client.h, pvm/fuse_mount.h): a root directory holding one
// file, "file" ("hello\n"). Its READ depends on MODE: "ok" answers, "hang" never answers (a
// program stuck on a dead server), "die" exits at once (a program that crashes); "noinit"
// answers nothing at all, not even INIT; "flushfork" forks (and waits for) a child before it
// answers each FLUSH — what libfuse does when it starts a worker thread for a request: under
// the pvm backend's ptrace, an event stop only vu's supervising thread resumes, met while a
// process of the view waits in close(2) for that answer. Given a mountpoint instead of /dev/fd/N (the pvm
// backend's environment B: the kernel's FUSE), it opens /dev/fuse and mounts it there with
// mount(2) first, as libfuse does. Speaks the kernel's protocol on the descriptor, one request
// per read() and one reply per write(), as libfuse does.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd;

static void reply(uint64_t unique, int error, const void* data, size_t len) {
  struct fuse_out_header h = {(uint32_t)(sizeof h + len), error, unique};
  struct iovec iov[2] = {{&h, sizeof h}, {(void*)data, len}};
  if (writev(fd, iov, data && len ? 2 : 1) < 0) exit(1);
}

static void attr_of(uint64_t node, struct fuse_attr* a) {
  memset(a, 0, sizeof *a);
  a->ino = node;
  a->mode = node == 1 ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  a->nlink = node == 1 ? 2 : 1;
  a->size = node == 1 ? 0 : 6;
  a->uid = getuid();
  a->gid = getgid();
}

static void reply_read(uint64_t unique, const void* arg) {
  const struct fuse_read_in* r = arg;
  const char text[] = "hello\n";
  size_t off = r->offset < 6 ? r->offset : 6;
  reply(unique, 0, text + off, 6 - off);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fake-fuse ok|hang|die|noinit|flushfork /dev/fd/N|MOUNTPOINT\n");
    return 2;
  }
  if (sscanf(argv[2], "/dev/fd/%d", &fd) != 1) {
    char opts[128];
    fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd, getuid(), getgid());
    if (fd < 0 || mount("fake-fuse", argv[2], "fuse.fake", MS_NOSUID | MS_NODEV, opts) < 0) {
      perror("fake-fuse: mount");
      return 1;
    }
  }
  const char* mode = argv[1];
  if (strcmp(mode, "noinit") == 0)
    for (;;) pause();  // mounted (or given the connection), never reads a request
  static char buf[1 << 18];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return 0;  // vu closed its end
    struct fuse_in_header* in = (struct fuse_in_header*)buf;
    void* arg = buf + sizeof *in;
    switch (in->opcode) {
      case FUSE_INIT: {
        struct fuse_init_out o = {0};
        o.major = FUSE_KERNEL_VERSION;
        o.minor = 31;
        o.max_write = 65536;
        reply(in->unique, 0, &o, sizeof o);
        break;
      }
      case FUSE_GETATTR: {
        struct fuse_attr_out o = {0};
        attr_of(in->nodeid, &o.attr);
        reply(in->unique, 0, &o, sizeof o);
        break;
      }
      case FUSE_LOOKUP: {
        if (in->nodeid != 1 || strcmp((char*)arg, "file") != 0) {
          reply(in->unique, -ENOENT, NULL, 0);
          break;
        }
        struct fuse_entry_out o = {0};
        o.nodeid = 2;
        attr_of(2, &o.attr);
        reply(in->unique, 0, &o, sizeof o);
        break;
      }
      case FUSE_OPEN:
      case FUSE_OPENDIR: {
        struct fuse_open_out o = {0};
        o.fh = in->nodeid;
        reply(in->unique, 0, &o, sizeof o);
        break;
      }
      case FUSE_READDIR: {
        const struct fuse_read_in* r = arg;
        char out[64] = {0};
        size_t len = 0;
        if (r->offset == 0) {
          struct fuse_dirent* d = (struct fuse_dirent*)out;
          d->ino = 2;
          d->off = 1;
          d->namelen = 4;
          d->type = DT_REG;
          memcpy(d->name, "file", 4);
          len = FUSE_DIRENT_SIZE(d);
        }
        reply(in->unique, 0, out, len);
        break;
      }
      case FUSE_READ:
        if (strcmp(mode, "die") == 0) return 1;
        if (strcmp(mode, "hang") == 0) break;  // never answered
        reply_read(in->unique, arg);
        break;
      case FUSE_STATFS: {
        struct fuse_statfs_out o = {0};
        o.st.bsize = 4096;
        o.st.namelen = 255;
        reply(in->unique, 0, &o, sizeof o);
        break;
      }
      case FUSE_FORGET:
        break;
      case FUSE_FLUSH:
        if (strcmp(mode, "flushfork") == 0) {
          pid_t c = fork();
          if (c == 0) _exit(0);
          if (c > 0) waitpid(c, NULL, 0);
        }
        reply(in->unique, 0, NULL, 0);
        break;
      case FUSE_RELEASE:
      case FUSE_RELEASEDIR:
        reply(in->unique, 0, NULL, 0);
        break;
      case FUSE_DESTROY:
        reply(in->unique, 0, NULL, 0);
        return 0;
      default:
        reply(in->unique, -ENOSYS, NULL, 0);
    }
  }
}
