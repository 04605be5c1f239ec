// vtrust-probe — what a TCP reset, SO_LINGER {1, 0} and a large UDP datagram look like to a
// program, printed the same way in any view (conformance.net_vde_trust compares an ns view and
// a pvm view on one vde_switch: pvm/vstack.h). Every wait is bounded (poll, SO_RCVTIMEO).
//
//   vtrust-probe serve PORT MODE          one connection: reads the client's byte, then
//       MODE linger0: SO_LINGER {1, 0} and close (an RST); unread: leaves a second byte unread
//       and closes (Linux resets: data unread at close); fin: close (a FIN)
//   vtrust-probe client IP PORT [soerror] connects, sends 1 byte (2 for unread), then prints
//       what poll, (SO_ERROR,) read, read and write give
//   vtrust-probe nbrefused IP PORT        non-blocking connect to a closed port: poll, SO_ERROR, read
//   vtrust-probe udprecv PORT             one datagram: its size and whether its bytes are right
//   vtrust-probe udpsend IP PORT SIZE     a datagram of SIZE bytes (a pattern), 3 times, 0.3 s apart
//   vtrust-probe churn IP PORT N          N connections to a `sink` cut mid-transfer (RST, close
//       with unread data, half-close), bounded: each at most 2 s
//   vtrust-probe sink PORT N              serves N connections: streams bytes, reads, until cut
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char* ename(int e) {
  switch (e) {
    case 0: return "0";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOTCONN: return "ENOTCONN";
    case EAGAIN: return "EAGAIN";
    default: return strerror(e);
  }
}

static int addr_of(const char* ip, int port, struct sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in* a = (struct sockaddr_in*)ss;
  struct sockaddr_in6* a6 = (struct sockaddr_in6*)ss;
  if (inet_pton(AF_INET, ip, &a->sin_addr) == 1) {
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    return sizeof *a;
  }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    return sizeof *a6;
  }
  fprintf(stderr, "vtrust-probe: bad address %s\n", ip);
  exit(2);
}

static int listener(int port, int type) {
  int s = socket(AF_INET, type, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) < 0 || (type == SOCK_STREAM && listen(s, 16) < 0)) {
    perror("vtrust-probe: listen");
    exit(1);
  }
  return s;
}

static int wait_in(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

static int connect_to(const char* ip, int port) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(ip, port, &ss);
  for (int tries = 0; tries < 30; ++tries) {  // the server view may not listen yet: 6 s at most
    int s = socket(ss.ss_family, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr*)&ss, len) == 0) return s;
    close(s);
    usleep(200000);
  }
  perror("vtrust-probe: connect");
  exit(1);
}

static int serve(int port, const char* mode) {
  int l = listener(port, SOCK_STREAM);
  printf("listening\n");
  fflush(stdout);
  if (!wait_in(l, 20000)) return 1;
  int c = accept(l, NULL, NULL);
  char b[2];
  if (c < 0 || !wait_in(c, 5000) || read(c, b, 1) != 1) return 1;
  if (strcmp(mode, "linger0") == 0) {
    struct linger lg = {1, 0};
    if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0) perror("SO_LINGER");
    struct linger got = {0, 0};
    socklen_t gl = sizeof got;
    getsockopt(c, SOL_SOCKET, SO_LINGER, &got, &gl);
    printf("SO_LINGER %d %d\n", got.l_onoff, got.l_linger);
  } else if (strcmp(mode, "unread") == 0) {
    wait_in(c, 5000);  // the client's second byte is here, and left unread
    usleep(200000);
  }
  close(c);
  printf("closed\n");
  // The view stays a moment: its network helper (vu-net on ns) must not unplug before the
  // RST or FIN its kernel just sent has left (the test is of the reset, not of that race).
  usleep(500000);
  return 0;
}

static void report(const char* what, ssize_t n) {
  if (n > 0) printf("%s: %zd bytes\n", what, n);
  else if (n == 0) printf("%s: EOF\n", what);
  else printf("%s: %s\n", what, ename(errno));
}

static int client(const char* ip, int port, int soerror, int bytes) {
  int s = connect_to(ip, port);
  if (write(s, "xy", bytes) != bytes) perror("write");
  struct pollfd p = {s, POLLIN, 0};
  int r = poll(&p, 1, 5000);
  printf("poll: %s%s%s\n", r == 1 ? "ready" : "timeout", (p.revents & POLLERR) ? " ERR" : "", (p.revents & POLLHUP) ? " HUP" : "");
  if (soerror) {
    int e = -1;
    socklen_t l = sizeof e;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
    printf("SO_ERROR: %s\n", ename(e));
  }
  char b[64];
  report("read", read(s, b, sizeof b));
  report("read", read(s, b, sizeof b));
  report("write", write(s, "z", 1));
  return 0;
}

static int nbrefused(const char* ip, int port) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(ip, port, &ss);
  int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int r = connect(s, (struct sockaddr*)&ss, len);
  printf("connect: %s\n", r == 0 ? "0" : ename(errno));
  struct pollfd p = {s, POLLOUT, 0};
  poll(&p, 1, 5000);
  int e = -1;
  socklen_t l = sizeof e;
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
  printf("SO_ERROR: %s\n", ename(e));
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
  printf("SO_ERROR again: %s\n", ename(e));
  return 0;
}

static int udprecv(int port) {
  int s = listener(port, SOCK_DGRAM);
  printf("listening\n");
  fflush(stdout);
  static unsigned char b[70000];
  if (!wait_in(s, 15000)) return printf("no datagram\n"), 1;
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr*)&from, &fl);
  int good = n > 0;
  for (ssize_t i = 0; i < n; ++i) good = good && b[i] == (unsigned char)(i * 7 + 1);
  printf("datagram: %zd bytes, %s\n", n, good ? "intact" : "damaged");
  return 0;
}

static int udpsend(const char* ip, int port, int size) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(ip, port, &ss);
  int s = socket(ss.ss_family, SOCK_DGRAM, 0);
  static unsigned char b[70000];
  for (int i = 0; i < size; ++i) b[i] = (unsigned char)(i * 7 + 1);
  for (int k = 0; k < 3; ++k) {
    if (sendto(s, b, size, 0, (struct sockaddr*)&ss, len) != size) perror("sendto");
    usleep(300000);
  }
  return 0;
}

// The server of `churn`: each connection in a child, which writes and reads until its peer is
// gone (at most 3 s).
static int sink(int port, int n) {
  int l = listener(port, SOCK_STREAM);
  printf("listening\n");
  fflush(stdout);
  static char b[65536];
  memset(b, 'a', sizeof b);
  for (int i = 0; i < n; ++i) {
    if (!wait_in(l, 10000)) break;
    int c = accept(l, NULL, NULL);
    if (c < 0) continue;
    pid_t pid = fork();
    if (pid == 0) {
      alarm(3);
      fcntl(c, F_SETFL, O_NONBLOCK);
      for (;;) {
        struct pollfd p = {c, POLLIN | POLLOUT, 0};
        if (poll(&p, 1, 2000) <= 0) _exit(0);
        if (p.revents & POLLIN) {
          ssize_t r = read(c, b, sizeof b);
          if (r == 0 || (r < 0 && errno != EAGAIN)) _exit(0);
        }
        if (p.revents & POLLOUT) {
          ssize_t w = write(c, b, sizeof b);
          if (w < 0 && errno != EAGAIN) _exit(0);
        }
        if (p.revents & (POLLERR | POLLHUP)) _exit(0);
      }
    }
    close(c);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
  while (wait(NULL) > 0) {
  }
  printf("served\n");
  return 0;
}

static int churn(const char* ip, int port, int n) {
  static char b[65536];
  memset(b, 'b', sizeof b);
  int done = 0;
  for (int i = 0; i < n; ++i) {
    int s = connect_to(ip, port);
    struct timeval tv = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (int k = 0; k < 1 + i % 5; ++k) {  // some bytes each way
      if (write(s, b, sizeof b) < 0) break;
      if (read(s, b, 4096 * (1 + i % 3)) <= 0) break;
    }
    switch (i % 3) {
      case 0: {  // reset
        struct linger lg = {1, 0};
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
      }
      case 1: break;  // close with unread data: reset too
      case 2: shutdown(s, SHUT_WR); break;
    }
    close(s);
    ++done;
  }
  printf("churned %d\n", done);
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]), argv[3]);
  if (argc >= 4 && strcmp(argv[1], "client") == 0)
    return client(argv[2], atoi(argv[3]), argc > 4 && strcmp(argv[4], "soerror") == 0, argc > 4 && strcmp(argv[4], "unread") == 0 ? 2 : 1);
  if (argc >= 4 && strcmp(argv[1], "nbrefused") == 0) return nbrefused(argv[2], atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "udprecv") == 0) return udprecv(atoi(argv[2]));
  if (argc >= 5 && strcmp(argv[1], "udpsend") == 0) return udpsend(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc >= 4 && strcmp(argv[1], "sink") == 0) return sink(atoi(argv[2]), atoi(argv[3]));
  if (argc >= 5 && strcmp(argv[1], "churn") == 0) return churn(argv[2], atoi(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: vtrust-probe serve|client|nbrefused|udprecv|udpsend|sink|churn … (see its source)\n");
  return 2;
}
