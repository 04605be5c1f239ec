// vu-unpack ARCHIVE CACHE — unpacks a root tree archive (tar, optionally gz/xz/zstd/bz2) once
// into the content-addressed cache CACHE (trees/SHA256 of the archive's bytes), for
// `vu run --rootfs ARCHIVE`. Prints the tree's path. Installed next to vu: vu is static, and
// libarchive with its compressors is not; a separate process also keeps the parsing of an
// untrusted archive out of vu.
//
//   CACHE/trees/HEX        a complete tree (renamed there only once unpacked whole)
//   CACHE/by-stat/KEY      symlink -> ../trees/HEX; KEY names the archive by device, inode, size
//                          and mtime, so that the next run finds its tree without reading it
//   CACHE/tmp.XXXXXX       an unpack under way (removed on any failure; a killed one's is
//                          removed by the next unpack once its lock can be taken)
//
// Refused (status 2, nothing left in the cache): a corrupt or truncated archive, an entry with
// an absolute name, a ".." component, or one that would be written through a symlink. Device
// nodes are skipped (an unprivileged user cannot make them; a view brings its own /dev); set-id
// bits are dropped; every file is the caller's. A progress line is drawn on a terminal.
// Exit: 0, 2 bad archive, 1 anything else (the cache not writable, a full disk…).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <sha2.h>
#include <sys/file.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/image_cache.h"

namespace {

constexpr int kBadArchive = 2;
constexpr int kFailed = 1;

struct Reader {
  int fd = -1;
  SHA2_CTX sha;
  char buf[1 << 16];
  off_t done = 0, total = 0;
  int last_pct = -1;
  bool tty = false;
  const char* name = "";
};

la_ssize_t read_cb(struct archive*, void* p, const void** out) {
  auto* r = static_cast<Reader*>(p);
  ssize_t n;
  while ((n = ::read(r->fd, r->buf, sizeof r->buf)) < 0 && errno == EINTR) {
  }
  if (n > 0) {
    SHA256Update(&r->sha, reinterpret_cast<const uint8_t*>(r->buf), static_cast<size_t>(n));
    r->done += n;
    int pct = r->total ? static_cast<int>(r->done * 100 / r->total) : 0;
    if (r->tty && pct != r->last_pct) {
      std::fprintf(stderr, "\rvu: unpacking %s %3d%%", r->name, pct);
      r->last_pct = pct;
    }
  }
  *out = r->buf;
  return n;
}

void remove_tree(const char* path) {
  ::nftw(
      path,
      [](const char* p, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_D || type == FTW_DNR) ::chmod(p, (st->st_mode & 07777) | S_IRWXU);
        return 0;
      },
      16, FTW_PHYS);
  ::nftw(path, [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) < 0 ? 0 : 0; }, 16,
         FTW_DEPTH | FTW_PHYS);
}

int fail(int code, const char* what, const std::string& detail) {
  std::fprintf(stderr, "vu-unpack: %s: %s\n", what, detail.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: vu-unpack ARCHIVE CACHE\n");
    return kFailed;
  }
  const char* archive_path = argv[1];
  const std::string cache = argv[2];
  ::umask(022);
  Reader r;
  r.fd = ::open(archive_path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (r.fd < 0 || ::fstat(r.fd, &st) < 0) return fail(kBadArchive, archive_path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(kBadArchive, archive_path, "not a regular file");
  r.total = st.st_size;
  r.tty = ::isatty(2);
  r.name = std::strrchr(archive_path, '/') ? std::strrchr(archive_path, '/') + 1 : archive_path;
  SHA256Init(&r.sha);

  // The cache and any missing parent (~/.cache on a new account, $XDG_CACHE_HOME), private.
  for (size_t k = 1; k <= cache.size(); ++k)
    if ((k == cache.size() || cache[k] == '/') && ::mkdir(cache.substr(0, k).c_str(), 0700) < 0 && errno != EEXIST)
      return fail(kFailed, cache.substr(0, k).c_str(), std::strerror(errno));
  for (const char* sub : {"/trees", "/by-stat"})
    if (::mkdir((cache + sub).c_str(), 0700) < 0 && errno != EEXIST)
      return fail(kFailed, (cache + sub).c_str(), std::strerror(errno));
  std::string tmp = cache + "/tmp.XXXXXX";
  if (!::mkdtemp(tmp.data())) return fail(kFailed, tmp.c_str(), std::strerror(errno));
  // Held while the unpack runs: a later unpack removes a tmp.* whose lock it can take.
  int lock = ::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  if (DIR* d = ::opendir(cache.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "tmp.", 4) != 0 || cache + "/" + e->d_name == tmp) continue;
      std::string stale = cache + "/" + e->d_name;
      int fd = ::open(stale.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) remove_tree(stale.c_str());
      if (fd >= 0) ::close(fd);
    }
    ::closedir(d);
  }

  struct archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  archive_read_support_format_gnutar(in);
  struct archive* out = archive_write_disk_new();
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
  int code = 0;
  std::string why;
  if (::chdir(tmp.c_str()) < 0) {
    code = kFailed;
    why = std::strerror(errno);
  } else if (archive_read_open(in, &r, nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    code = kBadArchive;
    why = archive_error_string(in) ? archive_error_string(in) : "not an archive";
  }
  struct archive_entry* e;
  long entries = 0;
  while (!code) {
    int rc = archive_read_next_header(in, &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      code = kBadArchive;
      why = archive_error_string(in) ? archive_error_string(in) : "corrupt archive";
      break;
    }
    ++entries;
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK) continue;  // skipped: a view has its own /dev
    archive_entry_set_perm(e, archive_entry_perm(e) & 01777);  // no set-id bits
    rc = archive_write_header(out, e);
    if (rc < ARCHIVE_WARN) {
      const char* msg = archive_error_string(out);
      code = (msg && (std::strstr(msg, "..") || std::strstr(msg, "bsolute") || std::strstr(msg, "symlink"))) ? kBadArchive
                                                                                                          : kFailed;
      why = std::string(archive_entry_pathname(e) ? archive_entry_pathname(e) : "?") + ": " + (msg ? msg : "refused");
      break;
    }
    if (archive_entry_size(e) > 0) {
      const void* block;
      size_t size;
      la_int64_t offset;
      while ((rc = archive_read_data_block(in, &block, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out, block, size, offset) < ARCHIVE_WARN) {
          rc = ARCHIVE_FATAL;
          why = archive_error_string(out) ? archive_error_string(out) : "write failed";
          code = kFailed;
          break;
        }
      }
      if (!code && rc != ARCHIVE_EOF) {
        code = kBadArchive;
        why = archive_error_string(in) ? archive_error_string(in) : "truncated archive";
      }
    }
    if (!code && archive_write_finish_entry(out) < ARCHIVE_WARN) {
      code = kFailed;
      why = archive_error_string(out) ? archive_error_string(out) : "write failed";
    }
  }
  if (!code && entries == 0) {
    code = kBadArchive;
    why = "no entries";
  }
  if (!code && archive_write_close(out) != ARCHIVE_OK) {
    code = kFailed;
    why = archive_error_string(out) ? archive_error_string(out) : "close failed";
  }
  archive_read_free(in);
  archive_write_free(out);
  if (r.tty) std::fprintf(stderr, "\r\033[K");
  if (::chdir("/") < 0) {
  }
  if (code) {
    remove_tree(tmp.c_str());
    return fail(code, archive_path, why);
  }
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256Final(d, &r.sha);
  char hex[2 * SHA256_DIGEST_LENGTH + 1];
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
  std::string final_dir = cache + "/trees/" + hex;
  ::chmod(tmp.c_str(), 0755);
  if (::rename(tmp.c_str(), final_dir.c_str()) < 0) {
    if (errno != EEXIST && errno != ENOTEMPTY) {
      int e2 = errno;
      remove_tree(tmp.c_str());
      return fail(kFailed, final_dir.c_str(), std::strerror(e2));
    }
    remove_tree(tmp.c_str());  // the same bytes were unpacked already (another name, a race)
  }
  std::string link = cache + "/by-stat/" + vu::image_cache::stat_key(st), link_tmp = link + ".new." + std::to_string(::getpid());
  if (::symlink((std::string("../trees/") + hex).c_str(), link_tmp.c_str()) == 0) {
    if (::rename(link_tmp.c_str(), link.c_str()) < 0) ::unlink(link_tmp.c_str());
  }
  std::printf("%s\n", final_dir.c_str());
  return 0;
}
