// pvm/cow.h — copy-on-write directories of the view without FUSE or overlayfs: `--cow LAYER:DIR`
// on the pvm backend. The path map (path_map.h) holds DIR as a mount whose `cow` is one of
// these; every lookup below DIR is a merged lookup of LAYER (the upper layer) over DIR's host
// directory (the lower one), and every file the view opens there is a real host descriptor of
// the layer that has it — read/write/mmap/exec never trap, only path calls do (View-OS's vufs
// "cow" mode, ../shared/reference/originals.md §10).
//
//   auto cow = VU_TRY(Cow::open("/home/u/layer", "/usr", uid, gid));
//   map.add({"/usr", "/usr", false, cow});           // the view's /usr is now copy-on-write
//   Resolved r = map.resolve({}, "/usr/bin/ls", false, {});   // r.cow, r.rel == "bin/ls"
//   cow->remove(r.rel, false);                       // rm: a whiteout in LAYER/bin/ls
//
// The layer format is overlayfs's with "userxattr" (fusefs/layer_format.h), as vu-cowfs
// (fusefs/cowfs.cc) and the ns backend's kernel overlay write it, so one layer serves every
// backend: a whiteout is a 0/0 character device, an opaque directory carries user.overlay.opaque=y, the view's own
// user.overlay.* attributes are stored escaped as user.overlay.overlay.*.
//
// Semantics (those of vu-cowfs, fs_test.sh compares the transcripts):
//   - lookup: the layer first; a whiteout hides the name, an opaque directory hides the lower
//     directory's entries; a directory present in both is merged (getdents64 of it is answered
//     by the monitor with the union, see listing()).
//   - copy-up before any change (open for writing or O_TRUNC, truncate, chmod, chown, utimes,
//     setxattr/removexattr, link, rename), parents first, keeping mode, times and xattrs; the
//     copy is the caller's (the user's) file. A regular file is copied into an O_TMPFILE (or, on
//     a filesystem without it, a fresh random name made O_EXCL) in the parent's layer directory
//     and linked under its name only when complete: two processes copying the same file up
//     never see half a copy, the loser's copy is dropped (linkat never replaces). Every change
//     in the layer goes through directory descriptors opened with RESOLVE_BENEATH |
//     RESOLVE_NO_SYMLINKS, so neither a symlink in the lower tree nor one planted in the layer
//     leads a write out of LAYER.
//   - unlink/rmdir of a name the lower layer has leaves a whiteout; mkdir where a whiteout was
//     makes an opaque directory; rename of a directory the lower layer has is EXDEV (overlayfs
//     without redirect_dir, and vu-cowfs: mv then copies), RENAME_EXCHANGE/WHITEOUT EINVAL.
//   - what stat shows: files of the lower layer are the view's (owner = the caller's ids, shown
//     as 0 under --root), the layer's root shows DIR's mode while it is 0700; st_ino is stable
//     across a copy-up as on overlayfs with xino: a copied-up file keeps its lower (st_dev,
//     st_ino) (recorded at copy-up in user.overlay.vu.origin, hidden from the view like the
//     layer's other attributes), a directory of both layers shows the lower one's, and the
//     layer's own files show DIR's st_dev with their own st_ino. fstat of a descriptor shows the
//     same (the monitor looks its path up again), except for a descriptor of a lower file opened
//     before that file was copied up: it still reads the old data (as overlayfs: a read-only
//     descriptor is not redirected) and fstat shows the lower file.
//
// Against whoever else can write the lower tree (a shared directory) or race the view's own
// calls: the lower layer's lookups (and readlink, copy-up) stay beneath its root and follow no
// symlink on the way (a directory swapped for a symlink after the view's walk went through it
// gives ELOOP, not the outside's stat, link target or data; the layer's own lookups are one
// fstatat: only the view, whose code pvm does not confine, can put a symlink there). A walk
// holds the lower directory it stands in open (Dir::lower_fd, opened one name at a time with
// O_NOFOLLOW from the lower root's descriptor) and looks the next name up below it: one fstatat
// or openat a step instead of a RESOLVE_BENEATH walk from the root (a 5-deep lookup of the lower
// layer: 10 calls, was 14); a directory swapped for a symlink after it was opened is not
// followed (the descriptor stays on the directory it opened; one moved out of the tree
// meanwhile still holds only what the lower tree held). A lower object is opened pinned (O_PATH, checked by
// fstat against the lookup, then opened through /proc/self/fd), so no open of the view ever
// writes the lower tree — a regular file opened for writing is copied up, what is opened there
// for writing is a FIFO, socket or device; the layer directory is checked (the caller's, not
// writable by others) on the descriptor every change goes through; a remove takes away what it
// looked up and whiteouts only, never a name the view made meanwhile (ENOTEMPTY, EEXIST). The
// layer format itself is fusefs/layer_format.h's, shared with vu-cowfs.
//
// Which calls the monitor performs: every one whose lookup meets a directory of both layers, a
// whiteout, a symlink or `..` below the cow; a relative walk from a directory only the layer
// has (a cwd or dirfd of the caller's there) through more of those is the host's own lookup,
// and the kernel runs it (SECCOMP_USER_NOTIF_FLAG_CONTINUE): `tar x` into a new directory.
// The in-process fast path (pvm/accel.c, "Copy-on-write directories") makes those opens itself,
// and futimens/fchmod of the layer's own files, without a trip to the monitor; it starts no
// other lookup from a directory below a cow, and maps no path into one.
//
// Thread-safety: lookups run on any worker at once, as the kernel's do; changes to the layer's
// shape (create, remove, rename, link, copy-up of directories) take the Cow's lock, file data is
// copied outside it (a large copy-up hands the monitor's receiving over first: never-block).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "fusefs/layer_format.h"
#include "pvm/path_map.h"

namespace vu::pvm {

class Cow {
 public:
  // Makes LAYER (0700: no one else may enter it on the host; the view sees DIR's mode) if
  // missing, and checks that it can hold whiteouts. Checks that neither contains the other.
  static Result<void> prepare_layer(const std::string& upper, const std::string& lower);
  // upper: LAYER (an existing directory of the caller's), lower: DIR's host path.
  // Refuses (125) a layer directory (fd) that is not the caller's or that others can write.
  static Result<void> check_layer(int fd, const std::string& upper);
  static Result<std::shared_ptr<Cow>> open(const std::string& upper, const std::string& lower, uid_t uid, gid_t gid);

  const std::string& upper() const { return upper_path_; }
  const std::string& lower() const { return lower_path_; }

  // A directory met on a walk: which layers have it (visible), and the lower one's O_PATH
  // descriptor when the walk opened it (null: the root's, or none: looked up from the root).
  struct Dir {
    bool upper = true, lower = true;
    std::shared_ptr<UniqueFd> lower_fd;
  };
  // One step of a walk: `name` in the directory `rel` (state d). 0 and *n, *st; or an errno
  // (ENOENT with n->whiteout when a whiteout hides the name).
  // next: the walk goes on through `name` (it is not the last component): when it is a
  // directory, *next is its state, with the lower directory opened for the next step (one
  // fstatat or openat below it instead of a walk from the lower root each time). Then a
  // directory only the lower layer has is not stat'ed: *st holds its type only.
  int child(const std::string& rel, const Dir& d, std::string_view name, CowNode* n, struct stat* st,
            Dir* next = nullptr) const;
  static Dir dir_of(const CowNode& n, const struct stat& st);
  // The whole walk from the root ("." is the root); rel is canonical (no symlink on the way).
  int lookup(const std::string& rel, CowNode* n, struct stat* st, Dir* dir = nullptr) const;
  // The host path of rel in a layer (1 upper, 2 lower).
  std::string host_of(const std::string& rel, int layer) const;
  // readlink(2) of rel in a layer (1 upper, 2 lower), no symlink followed on the way.
  ssize_t read_link(const std::string& rel, int layer, char* buf, size_t size) const;
  // Which layer and relative path a host path is (0: neither).
  int layer_of(const std::string& host, std::string* rel) const;

  // What the view sees of an object (owner, mode of the root, st_dev/st_ino).
  void present(const std::string& rel, const CowNode& n, struct stat* st) const;
  // The same for a descriptor whose host path is `host` and fstat `st` (see above).
  void present_fd(const std::string& host, struct stat* st) const;

  // Changes; each returns 0 or an errno and re-checks under the lock what the caller saw.
  // before_long: called before a long copy (the monitor hands its receiving over).
  int copy_up(const std::string& rel, const std::function<void()>& before_long = {});
  int mkdir(const std::string& rel, mode_t mode);
  int mknod(const std::string& rel, mode_t mode, dev_t dev);
  int symlink(const std::string& target, const std::string& rel);
  int remove(const std::string& rel, bool dir);
  int rename(const std::string& from, const std::string& to, unsigned flags);
  int link(const std::string& from, const std::string& to);
  // Makes ready a name something else creates in the layer (a unix socket's bind): parents
  // copied up, a whiteout under the name dropped.
  int prepare_name(const std::string& rel);
  // Opens rel for the caller: copied up first when the open writes; created (flags O_CREAT,
  // mode already masked) in the layer when missing. Returns the descriptor or -errno.
  // as_root (--root): a file of the layer (every file here is the view's) opens whatever its
  // mode, as for root in a user namespace that maps its owner (CAP_DAC_OVERRIDE).
  int open(const std::string& rel, int flags, mode_t mode, const std::function<void()>& before_long = {},
           bool as_root = false);
  // Attribute changes, on the layer's copy.
  int chmod(const std::string& rel, mode_t mode);
  int chown(const std::string& rel, uid_t u, gid_t g);
  int truncate(const std::string& rel, off_t len);
  int utimens(const std::string& rel, const struct timespec* times);
  int setxattr(const std::string& rel, const std::string& name, const void* value, size_t size, int flags);
  int removexattr(const std::string& rel, const std::string& name);
  // Reads: the view's names (user.overlay.* of the view escaped, the layer's own hidden).
  ssize_t getxattr(const std::string& rel, const CowNode& n, const std::string& name, void* buf, size_t size) const;
  ssize_t listxattr(const std::string& rel, const CowNode& n, char* buf, size_t size) const;

  // The merged listing of the directory at host path `host` (a descriptor's), when the monitor
  // must give it: a directory both layers show, or one holding whiteouts. nullopt: the host's
  // own listing is the view's. Entries: ".", "..", then the names (d_ino as stat shows them).
  struct Entry {
    std::string name;
    unsigned char type;
    uint64_t ino;
  };
  std::optional<std::vector<Entry>> listing(const std::string& host) const;

 private:
  Cow() = default;
  int copy_up_locked(const std::string& rel, const std::function<void()>& before_long);
  int copy_one_locked(const std::string& rel, const std::function<void()>& before_long);
  int prepare_create(const std::string& rel, bool* hid_lower);
  int list(const std::string& rel, const CowNode& n, std::vector<Entry>* out, bool* whiteouts) const;
  int remove_locked(const std::string& rel, bool dir);
  int open_once(const std::string& rel, int flags, mode_t mode, const std::function<void()>& before_long, bool as_root);
  int open_lower(const std::string& rel, const struct stat& st, int flags) const;

  std::string upper_path_, lower_path_;
  UniqueFd upper_, lower_;  // O_PATH directories
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  dev_t lower_dev_ = 0;
  mode_t lower_mode_ = 0755;
  std::mutex mu_;  // the layer's shape
};

// The copy-on-write directory a host path (a descriptor's) is in: its layer (1 the layer, 2 the
// lower directory), *cow and *rel; 0 when none.
int cow_of_host(const PathMap& map, const std::string& host, Cow** cow, std::string* rel);

// True for an overlayfs whiteout (0/0 character device): fusefs/layer_format.h's.
using layer_format::is_whiteout;

}  // namespace vu::pvm
