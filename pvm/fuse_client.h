// pvm/fuse_client.h — the monitor as the kernel's side of FUSE (issue 16, environment A: no
// mount(2), no fusermount3, no user namespaces), after umvu's fuse module (originals.md §10).
//
// A FUSE program (squashfuse, fuse2fs, vu-cowfs, any --fuse CMD) is started by vu with one end of
// a SOCK_SEQPACKET socketpair as its "/dev/fuse": libfuse reads one request per read() and writes
// one reply per writev(), and SEQPACKET keeps those boundaries, so the program cannot tell it
// from the kernel. How it gets its end: libfuse3 programs are given the mountpoint "/dev/fd/N"
// (libfuse3 takes that as an already mounted fuse descriptor); libfuse2 programs (fuse2fs) open
// /dev/fuse and mount(2) "fd=N,…" themselves, which pvm/fuse_shim.c (preloaded into them only)
// answers with the socket.
//
// Two layers:
//   FuseClient  the protocol: INIT (no splice, no writeback cache; reads and writes of at most
//               128 KiB: one SEQPACKET message must fit the socket's default buffer and
//               libfuse's), then one request at a time, each a
//               call that returns 0 or an errno. A program that dies fails the pending and all
//               later calls with ENOTCONN (its death is logged once, naming it); one that never
//               answers INIT fails init() after a deadline. A waiting request can be abandoned
//               (`cancelled` says so every 20 ms: the view's caller is gone or has a signal); a
//               late reply is recognised by its unique and dropped.
//   FuseTree    what the view sees under the mountpoint: a shadow tree in a private host
//               directory (the path map mounts it on the mountpoint). Why a shadow tree and not
//               answers per call: every object the view can name must have a host object
//               behind it — the path map's walk lstat()s it, chdir and execve are rewritten to
//               host paths by ptrace, O_PATH opens are done by the caller itself, mmap/dup2/exec
//               need real descriptors, getdents64 runs natively — so materializing the tree
//               keeps every one of those paths the kernel's own, exact and fast.
//      - materialize(): at start, before the command runs, every directory is listed
//        (OPENDIR/READDIR/LOOKUP) and its entries made in the shadow: directories, symlinks
//        (READLINK), regular files as sparse files of the right size, hard links as hard links;
//        modes and times as the program reports them. Files with an execute bit are filled at
//        once (execve is rewritten on the ptrace thread, which must never wait for FUSE).
//      - fill_for_open(): a regular file's content is read (OPEN/READ/RELEASE) into its shadow
//        file on its first open in the view (the monitor's open handler, on a worker thread,
//        receiving handed over first), unless the open truncates it. The caller then gets a
//        real descriptor of the shadow file: read, pread, mmap, exec, dup2 all native.
//      - sync(): writes the view's changes back through FUSE — names made (CREATE+WRITE,
//        MKDIR, SYMLINK, LINK), removed (UNLINK, RMDIR), renamed (RENAME: the shadow inode that
//        moved), content and attributes changed (SETATTR, WRITE, from the shadow's ctime), then
//        FSYNC. It runs at sync(2), syncfs(2), fsync(2), fdatasync(2) of the view (trapped in
//        views with a FUSE mount) and when the view ends, before DESTROY.
//      - stat: owners are the program's (as the ns backend's user namespace shows them: the
//        view's own id, else 65534), and while the view has not changed an object, its link
//        count, its blocks and a directory's size too; modes, sizes and times are the shadow's,
//        made equal to the program's. The mount table names the program (fuse.squashfuse),
//        statfs asks it (STATFS).
// Never-block: a fill or a write-back runs on the monitor worker of the call that needs it,
// which hands the receiving of other calls over first; while it waits for the program every
// 20 ms it looks whether its caller is gone or has a signal to take, and then gives up (the
// call is restarted after the signal, or ends with EINTR, as the kernel's would). Before the
// command runs (INIT, materialize) each request has a deadline ($VU_FUSE_INIT_TIMEOUT, 10 s).
// Limits (also in the README's pvm section): the whole tree's names and attributes are read at
// start (an image of 100k files costs ~100k LOOKUPs before the command runs); at most 2^19 names
// per tree ($VU_FUSE_MAX_NODES; each costs the monitor a few hundred bytes: a program that lists
// more, or without end, fails the start with a clear error, status 125); a file's content
// is read whole on its first open (no partial reads: a 1 GiB file read for one byte costs 1 GiB);
// the view's changes reach the program at the sync points above, not at write() or close() (a
// full ext4 image is ENOSPC at the sync and at the end, reported, not at the write; another
// process outside the view sees them only then); permission checks: see "Permissions" below;
// chown and xattrs in the view are not written back;
// a hard link the program reports with one inode number is one shadow inode, with two (squashfuse)
// two files; the shadow lives in /dev/shm (RAM) or $TMPDIR; the in-process fast path
// (pvm/accel.c) is off in views with a FUSE mount (its native openat would read a file not filled
// yet); the program runs outside the view, untraced (its arguments are host paths); libfuse2
// programs need the shim, i.e. dynamic linking. A path of nearly PATH_MAX bytes under the
// mountpoint works as on ns (the shadow's longer host path is used in chunks: pvm/host_at.h).
//
// Limits: the program's, asked (pvm/fuse_client_limits.cc). Where the shadow's own limits would
// answer, the program gets the questions the kernel's FUSE would ask it, and its answer is the
// view's (no errno of any program is assumed: fuse2fs, through its shim on every backend,
// answers a name of 256 bytes with ENAMETOOLONG, and a truncate to 10^15 bytes with success and a size of 0, which the view then sees, as on
// ns; integration.pjdfstest_image compares ns, B and A subtest by subtest):
//   - a path component longer than NAME_MAX (tmpfs refuses it): up to FUSE_NAME_MAX (1024; longer
//     is the kernel's own ENAMETOOLONG) it is sent to the program with LOOKUP, after the view's
//     changes are written back (its directory must exist there). A directory on the way, or a
//     final name of a call that needs one, gets the program's errno (ENOENT when it has none);
//     a creating call (open O_CREAT, mkdir, mknod, symlink, link, rename onto it) then sends
//     what the kernel sends after its own permission check of the directory (CREATE, MKDIR,
//     MKNOD, SYMLINK, LINK, RENAME) and returns the program's errno. A program that accepts such
//     a name (or has one) has something the shadow cannot hold: the name is removed again (renamed
//     back), a warning names it, and the call is refused with ENAMETOOLONG. Not asked: the
//     ptrace stops (chdir, execve, O_PATH opens), which keep the shadow's ENAMETOOLONG.
//   - truncate(2) and ftruncate(2) (trapped in views with a FUSE mount) that grow a shadow file:
//     after the kernel's own checks (write permission, RLIMIT_FSIZE) and the write-back, SETATTR
//     size asks the program; its errno is the call's, else the shadow file takes the size the
//     program reports (the kernel's inode takes the reply's). A size the program accepts and the
//     shadow cannot hold is set back on the program's side, logged and refused with the shadow's
//     errno. Not asked: write(2) past the program's largest file and fallocate (they run on the
//     shadow; the program's error comes at the sync), shrinking truncates (written back at the sync).
// (Names that swap places, mv a t; mv b a; mv t b,
// are replayed as renames through a temporary name: the program's content moves with them.)
//
// Permissions. The view's calls on the shadow are checked by the kernel against the shadow,
// which the caller owns. For a program given `-o default_permissions` (fuse2fs for
// --mount image:), where the ns backend's kernel checks the image's modes and owners, each
// shadow object of another owner gets as its owner's bits the bits the view's identity would
// get (FuseAccess: the view's uid and gid as the program's ids go, 0 under --root; the
// group's bits when the object's group is the view's, else the others'), so that every path
// walk, open, exec and directory change is checked natively as on the kernel's FUSE mount; stat
// shows the program's mode, chmod of such an object is EPERM and its mode is never written
// back. No identity passes the checks (the ns view's root has no capability over ids its user
// namespace does not map). The rules the shadow cannot check because the caller owns it are
// the monitor's, for an object of another owner, as the kernel's FUSE says them with the
// program's owners as host ids (environment B; pvm/fuse_client_limits.cc, fuse_owner_check,
// conformance.fs_images): utimes with explicit times and chown/chgrp EPERM, utimes "now"
// EACCES unless the caller may write it, unlink/rmdir/rename in a sticky directory of another
// owner EPERM, a hard link to it EPERM under fs.protected_hardlinks unless the caller may read
// and write it. (The ns backend's kernel says EOVERFLOW to every change of an object its user
// namespace does not map, and EACCES to writing it: A follows B there, as it always did for
// chmod.) Left as the shadow's: supplementary groups; chown is not written back. sync() lists a directory closed to the caller (such
// a one, or one the view closed itself) through u+rx for the moment of its listing, and an
// entry it cannot stat makes the listing incomplete: no removal is written back then (before,
// what it could not stat was written back as removed: the files of a directory the view made
// mode 000). Without default_permissions (squashfuse, --fuse) nothing is checked, as on the
// kernel's mount (the program may check; squashfs is EROFS).
#pragma once

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "pvm/call.h"

namespace vu::pvm {

class FuseClient {
 public:
  // dev: vu's end of the socketpair; name: the program, for messages.
  FuseClient(UniqueFd dev, std::string name);
  ~FuseClient();
  FuseClient(const FuseClient&) = delete;
  FuseClient& operator=(const FuseClient&) = delete;

  // INIT; fails (kSetup) when the program answers nothing within timeout_ms, dies, or speaks
  // another major version.
  Result<void> init(int timeout_ms);
  uint32_t max_write() const { return max_write_; }
  uint32_t max_read() const { return max_read_; }
  uint32_t minor() const { return minor_; }
  bool alive() const;
  // The deadline of each later request (-1: none; the waiting caller may give up instead).
  void set_request_timeout(int ms) { request_timeout_ms_ = ms; }
  const std::string& name() const { return name_; }

  // Returns true while the caller still wants the answer; polled every 20 ms while waiting.
  using Cancelled = std::function<bool()>;
  static void set_cancelled(Cancelled c) { cancelled_ = std::move(c); }  // for the calling thread
  static bool giving_up() { return cancelled_ && cancelled_(); }
  // Takes `l`'s mutex, or gives up (false) when this thread's caller does.
  static bool lock_or_give_up(std::unique_lock<std::mutex>& l);

  struct Entry {
    uint64_t node = 0;
    fuse_attr attr{};
  };
  struct Dirent {
    uint64_t ino;
    uint32_t type;  // DT_*
    std::string name;
  };
  // Each returns 0 or an errno (ENOTCONN: the program is gone; EINTR: abandoned).
  int lookup(uint64_t parent, const std::string& name, Entry* out);
  int getattr(uint64_t node, fuse_attr* out);
  int readlink(uint64_t node, std::string* out);
  int open(uint64_t node, int flags, bool dir, uint64_t* fh);
  int release(uint64_t node, uint64_t fh, bool dir);
  int flush(uint64_t node, uint64_t fh);
  int fsync(uint64_t node, uint64_t fh, bool dir);
  // Appends the whole listing of an open directory; E2BIG past `max` entries.
  int readdir_all(uint64_t node, uint64_t fh, std::vector<Dirent>* out, size_t max = SIZE_MAX);
  // Reads up to size bytes at off; a short read is the end of the file.
  int read(uint64_t node, uint64_t fh, uint64_t off, uint32_t size, std::string* out);
  int write(uint64_t node, uint64_t fh, uint64_t off, const char* data, uint32_t size, uint32_t* written);
  int statfs(fuse_kstatfs* out);
  int create(uint64_t parent, const std::string& name, mode_t mode, int flags, Entry* out, uint64_t* fh);
  int mknod(uint64_t parent, const std::string& name, mode_t mode, dev_t rdev, Entry* out);
  int mkdir(uint64_t parent, const std::string& name, mode_t mode, Entry* out);
  int symlink(uint64_t parent, const std::string& name, const std::string& target, Entry* out);
  int link(uint64_t node, uint64_t newparent, const std::string& newname, Entry* out);
  int unlink(uint64_t parent, const std::string& name);
  int rmdir(uint64_t parent, const std::string& name);
  int rename(uint64_t parent, const std::string& name, uint64_t newparent, const std::string& newname,
             unsigned flags = 0);
  int setattr(uint64_t node, const fuse_setattr_in& in, fuse_attr* out);
  int setxattr(uint64_t node, const std::string& name, const std::string& value, int flags);
  int getxattr(uint64_t node, const std::string& name, std::string* value);  // value empty: size only
  int listxattr(uint64_t node, std::string* names);
  int removexattr(uint64_t node, const std::string& name);
  void forget(uint64_t node, uint64_t nlookup);  // no reply
  // DESTROY (the program flushes and leaves its loop), then the socket is closed.
  void destroy(int timeout_ms);

 private:
  // One request: header + args; the reply's payload in *out. 0 or errno.
  int request(uint32_t opcode, uint64_t node, std::initializer_list<std::pair<const void*, size_t>> args,
              std::string* out, int timeout_ms = -1);
  void mark_dead(const char* why);

  UniqueFd dev_;
  std::string name_;
  std::mutex mu_;  // one request in flight
  uint64_t unique_ = 0;
  bool dead_ = false;
  bool logged_ = false;
  uint32_t minor_ = 0, max_write_ = 4096, max_read_ = 128 * 1024;
  int request_timeout_ms_ = -1;
  bool trace_ = false;  // $VU_FUSE_TRACE: each request and reply on stderr
  static thread_local Cancelled cancelled_;
};

// The shadow tree of one FUSE mount (see above).
class FuseTree {
 public:
  FuseTree(std::unique_ptr<FuseClient> client, std::string shadow, std::string view);
  FuseClient& client() { return *client_; }
  const std::string& shadow() const { return shadow_; }  // host directory
  const std::string& view() const { return view_; }      // mountpoint in the view

  // Lists the whole tree into the shadow directory (which must be empty).
  Result<void> materialize();
  // Before the view opens `host` (a path in the shadow): fills a regular file not filled yet,
  // unless `truncating`. 0 or an errno (EIO: the program failed; EINTR: abandoned).
  int fill_for_open(const std::string& host, const struct stat& st, bool truncating);
  // Writes the view's changes back (see above). 0 or the first errno (EIO when a write-back
  // failed; the message names the path).
  int sync();
  // Whether a host path lies in this shadow.
  bool holds(const std::string& host) const;
  // stat of a shadow object the view has not changed: the size of a directory and the blocks
  // of anything are the program's (a squashfs directory's size is its listing's, not tmpfs's;
  // a file not read yet is sparse in the shadow). False when `st` is not such an object.
  // Hard links the program reports with distinct inode numbers (squashfuse) are distinct
  // files in the shadow: their link count is the program's too.
  // Owners are always the program's (as ids of the view: see fuse_adjust_stat), and so is the
  // mode of an object of another owner (see Permissions).
  bool adjust_stat(dev_t dev, ino_t ino, const struct timespec& ctime, uint64_t* size, uint64_t* blocks,
                   uint64_t* nlink, uint32_t* uid, uint32_t* gid, uint32_t* mode);
  // The view's identity for the checks of default_permissions (before materialize()).
  struct Access {
    uint32_t uid, gid;
  };
  void set_access(Access a) { access_ = a; }
  // EPERM when a shadow object is of another owner (chmod), else 0.
  int owner_only(dev_t dev, ino_t ino);
  struct timespec restore_mode(const std::string& host, const struct stat& before);  // sync()'s opening up: the new ctime
  struct Counts {
    uint64_t nodes = 0, filled = 0, filled_bytes = 0, written_back = 0;
  };
  Counts counts();

  // The program's word where the shadow's limits would answer instead (pvm/fuse_client_limits.cc;
  // see "Limits: the program's, asked" above). Each first writes the view's changes back (the
  // objects concerned must exist on the program's side) and returns 0 or an errno (EINTR:
  // abandoned; EIO: the program does not know the directory, its write-back failed).
  // LOOKUP of `name` in the shadow directory `dir`: 0 when the program has such a name.
  int ask_lookup(const std::string& dir, const std::string& name);
  // A creating call's request for a name the program does not have (as the kernel's FUSE
  // sends it after its LOOKUP): FUSE_CREATE (MKNOD without it), FUSE_MKDIR, FUSE_MKNOD,
  // FUSE_SYMLINK (target), FUSE_LINK, FUSE_RENAME (from: the source's shadow path). The
  // program's errno; when it made the name, which the shadow cannot hold, it is removed again
  // (or renamed back), logged, and the answer is ENAMETOOLONG.
  struct Make {
    uint32_t opcode = 0;
    mode_t mode = 0;
    dev_t rdev = 0;
    int flags = 0;
    unsigned rename_flags = 0;
    std::string target, from;
  };
  int ask_make(const std::string& dir, const std::string& name, const Make& m);
  // SETATTR size of the shadow file `host` (inode `ino`), then the shadow file takes the size
  // the program reports (as the kernel's inode takes it from the reply). -1 when `host` is no
  // longer that inode; when the shadow cannot take the size, the program's file is set back,
  // the refusal logged and the shadow's errno returned.
  int ask_size(const std::string& host, ino_t ino, uint64_t size);

 private:
  struct Node {
    uint64_t node = 0;        // FUSE nodeid
    uint64_t fuse_ino = 0;
    uint64_t parent_ino = 0;  // shadow ino of the directory it was recorded in
    std::string name;
    mode_t mode = 0;          // as last known on both sides
    bool filled = false;
    struct timespec ctime {};  // the shadow's ctime when both sides last agreed
    struct timespec mtime {};
    off_t size = 0;
  };
  int fill_locked(uint64_t ino, Node& n, const std::string& host);
  uint64_t node_locked(const std::string& host);  // the FUSE node of a shadow object, 0 if unknown
  int materialize_dir(uint64_t node, const std::string& host, uint64_t host_ino, int depth);
  void remember(const std::string& host, Node n);
  // Records n as the shadow object `st` describes (sync: the stat of its walk, not of the path
  // now, which the view may have removed, renamed or changed since: the next sync sees that).
  void remember(const struct stat& st, Node n);
  // The shadow file's content to the program (fh open for writing). A file the view made
  // unreadable to its owner is read through u+r for the moment of its opening; `seen` (the
  // walk's stat) then takes the ctime that moved, which is no change of the view's.
  // kGone: the shadow file is gone since the walk (the view removed or renamed it: the next
  // sync writes that back), not a failure.
  static constexpr int kGone = -1;
  int write_content(Node& n, const std::string& host, uint64_t fh, struct stat* seen);
  int sync_locked();

  std::unique_ptr<FuseClient> client_;
  std::string shadow_, view_;
  std::mutex mu_;  // the nodes; fills and syncs are serialized
  std::map<uint64_t, Node> nodes_;               // by shadow st_ino
  std::map<uint64_t, uint64_t> by_fuse_ino_;     // FUSE ino → shadow ino (hard links)
  std::set<std::tuple<uint64_t, uint64_t, std::string>> links_;  // more names: (ino, parent ino, name)
  struct StatFix {
    struct timespec ctime;
    uint64_t size, blocks, nlink;
    uint32_t uid, gid;
    bool dir;
    bool other_owner;  // not the view's (Permissions): its mode is shown from `mode`
    uint32_t mode;     // the program's permission bits
  };
  std::mutex stat_mu_;  // never held while waiting for the program (stat must not wait for a fill)
  std::map<uint64_t, StatFix> stat_fix_;  // by shadow st_ino
  void fix_stat(const std::string& host, const fuse_attr& a);
  mode_t shadow_mode(const fuse_attr& a) const;
  std::optional<Access> access_;
  std::map<uint64_t, std::string> first_path_;   // materialize(): FUSE ino → its first shadow path
  size_t max_nodes_ = 0;   // materialize(): at most this many names ($VU_FUSE_MAX_NODES, 2^19)
  size_t pending_ = 0;     // names listed, not made yet
  bool too_many_ = false;  // materialize() stopped at max_nodes_
  bool newest_first_ = false;  // the shadow lists its newest names first (tmpfs)
  dev_t dev_ = 0;                                // the shadow's st_dev
  Counts counts_;
};

// A FUSE program started for a mount. argv[mount_arg] is the mountpoint argument: replaced by
// "/dev/fd/N" (libfuse3), or by the shadow directory with the shim preloaded (libfuse2, whose
// mount(2) the shim answers; `shim` is libvu-fuse-shim.so). The program runs outside the view
// (not traced), as the caller, with stdout and stderr kept for messages, dies with vu
// (PR_SET_PDEATHSIG), and is given init_timeout_ms to answer INIT; then the tree is
// materialized. Errors name the program, its exit status and its output. access: the program
// was given -o default_permissions (see Permissions).
struct FuseProgram {
  pid_t pid = -1;
  pid_t pgid = -1;  // its process group (ended with it)
  std::string name;
  std::shared_ptr<FuseTree> tree;
  UniqueFd output;  // memfd: its stdout and stderr
};
Result<FuseProgram> start_fuse_program(const std::vector<std::string>& argv, size_t mount_arg, bool libfuse2,
                                       const std::string& shim, const std::string& shadow, const std::string& view,
                                       int init_timeout_ms, std::string name = {},  // name: for messages
                                       std::optional<FuseTree::Access> access = std::nullopt);
// The end: writes the view's changes back, sends DESTROY (the program flushes and exits),
// waits for it up to timeout_ms, then kills it. 0, or EIO when the write-back failed (logged).
int stop_fuse_program(FuseProgram& p, int timeout_ms);
// "…: exit status N; its output: …" for messages.
std::string fuse_program_outcome(FuseProgram& p);

// The monitor's hooks. Before an open of `host` (a resolved regular file): fill it if it is in
// a shadow tree (0, an errno, or kERestartSys when the caller took a signal meanwhile).
int fuse_before_open(const Config& cfg, Call& c, const std::string& host, const struct stat& st, int flags);
// sync, syncfs, fsync, fdatasync: write back the trees concerned, then let the call run.
Answer do_fuse_sync(const Config& cfg, Call& c);
// struct stat / statx of a shadow object: adjusted as FuseTree::adjust_stat says. The owners the
// program reports are ids of the view, as the kernel reads them from a FUSE program in the ns
// backend's user namespace: the view's own id (the caller's, or 0 under --root) is the caller,
// any other is unmapped (65534); they are turned into host ids for view_uid()/view_gid().
void fuse_adjust_stat(const Config& cfg, struct stat* st);
void fuse_adjust_statx(const Config& cfg, struct statx* stx);
// chmod of a shadow object (st: its host stat): EPERM when it is of another owner under
// default_permissions, else 0.
int fuse_chmod_check(const Config& cfg, const struct stat& st);
// The mount table's source and type for a shadow's root (as the kernel's FUSE shows them:
// "squashfuse", "fuse.squashfuse"); false when `host` is not one.
bool fuse_mount_names(const Config& cfg, const std::string& host, std::string* source, std::string* type);
// statfs of a FUSE mountpoint (host: a shadow's root or below): the program's figures. -1 when
// `host` is not in a shadow, else 0 or an errno.
int fuse_statfs(const Config& cfg, const std::string& host, struct statfs* out);
// Limits the program sets, not the shadow (pvm/fuse_client_limits.cc). A path whose component
// the host refused as longer than NAME_MAX (Resolved::long_name), in a shadow: asked of the
// program with LOOKUP when at most FUSE_NAME_MAX (1024) bytes, as the kernel's FUSE does (r->err
// becomes its answer; a final name it does not have leaves r->fuse_long set). Only for
// seccomp notifications (not the ptrace stops: chdir, execve, O_PATH opens keep ENAMETOOLONG).
void fuse_long_name(const Config& cfg, Call& c, Resolved* r);
// A creating call on such a name (r.fuse_long): FuseTree::ask_make after the kernel's own
// permission check of the directory (write and search). An errno, or kERestartSys.
int fuse_make_long(const Config& cfg, Call& c, const Resolved& r, FuseTree::Make m);
// truncate(2) of a shadow file `host` (st: its stat) that grows it: the program is asked first
// (FuseTree::ask_size). -1 when the call is not concerned (not in a shadow, not growing, or the
// kernel's own checks refuse it: the usual path answers), else 0, an errno or kERestartSys.
int fuse_truncate(const Config& cfg, Call& c, const std::string& host, const struct stat& st, int64_t size);
// ftruncate(2), trapped in views with a FUSE mount: the same for a descriptor of a shadow file.
Answer do_fuse_ftruncate(const Config& cfg, Call& c);
// Another owner's object under default_permissions (see Permissions), `host` its shadow path:
// what the kernel's FUSE says with the program's owners as host ids (environment B). kChange
// (chown of an id, utimes with explicit times): EPERM; kTouch (utimes "now"): EACCES unless
// the caller may write it; kRemove (unlink, rmdir, rename of it or onto it): EPERM in a sticky
// directory of another owner the caller may write; kLink (link to it): EPERM under
// fs.protected_hardlinks=1 unless it is a regular file the caller may read and write. 0 for
// the view's own objects and calls not concerned. (chmod: fuse_chmod_check.)
enum class FuseUse { kChange, kTouch, kRemove, kLink };
int fuse_owner_check(const Config& cfg, const std::string& host, const struct stat& st, FuseUse use);
// utimes family: kTouch for "now" (no times, or UTIME_NOW/UTIME_OMIT only), else kChange.
int fuse_utimes_check(const Config& cfg, Call& c, const std::string& host, const struct stat& st, uint64_t times);
// For the hooks: the tree holding a host path (nullptr: none), and a caller's wait for a
// program (the receiving handed over; given up when the caller is gone or has a signal).
FuseTree* fuse_tree_of(const Config& cfg, const std::string& host);
struct FuseCallerWait {
  explicit FuseCallerWait(Call& c);
  ~FuseCallerWait();
};

}  // namespace vu::pvm
