// vu-unpack — unpacks a root tree once into vu's content-addressed cache, for `vu run --rootfs`.
//
//   vu-unpack ARCHIVE CACHE        a tar (optionally gz/xz/zstd/bz2) of a tree
//   vu-unpack --oci DIR TAG CACHE  an OCI image layout (index.json -> manifest -> layers, with
//                                  whiteouts); TAG "" takes the layout's only image
// Prints the tree's path; for OCI also the image config's defaults, one per line:
// "env\tK=V", "workdir\tDIR", "user\tUSER", "cmd\tARG" (Entrypoint then Cmd; \n in a value as \\n).
// Installed next to vu: vu is static, and libarchive with its compressors is not; a separate
// process also keeps the parsing of untrusted archives out of vu.
//
//   CACHE/trees/HEX        a complete tree: HEX = SHA-256 of the tar's bytes, or the manifest's
//                          digest; renamed there only once unpacked whole (HEX.defaults beside it)
//   CACHE/by-stat/KEY      tars: symlink -> ../trees/HEX, KEY = the file's device, inode, size and
//                          mtime (runtime/image_cache.h), so vu finds the tree without reading it
//   CACHE/tmp.XXXXXX       an unpack under way (removed on failure; a killed one's is removed by
//                          the next unpack once its lock can be taken)
//
// Refused (status 2, nothing left in the cache): a corrupt or truncated archive, an entry with
// an absolute name, a ".." component, or one written through a symlink; an OCI blob whose
// bytes do not match its digest, a layout without the tag. Device nodes are skipped (an
// unprivileged user cannot make them; a view brings its own /dev); set-id bits are dropped;
// every file is the caller's. A progress line is drawn on a terminal.
// Exit: 0, 2 bad input, 1 anything else (the cache not writable, a full disk…).
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <nettle/sha2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "base/temp_dir.h"
#include "runtime/image_cache.h"

namespace {

constexpr int kBadArchive = 2;
constexpr int kFailed = 1;

struct Failure {
  int code = 0;
  std::string why;
};

struct Reader {
  int fd = -1;
  struct sha256_ctx sha;
  char buf[1 << 16];
  off_t done = 0, total = 0;
  int last_pct = -1;
  bool tty = false;
  std::string name;
};

la_ssize_t read_cb(struct archive*, void* p, const void** out) {
  auto* r = static_cast<Reader*>(p);
  ssize_t n;
  while ((n = ::read(r->fd, r->buf, sizeof r->buf)) < 0 && errno == EINTR) {
  }
  if (n > 0) {
    sha256_update(&r->sha, static_cast<size_t>(n), reinterpret_cast<const uint8_t*>(r->buf));
    r->done += n;
    int pct = r->total ? static_cast<int>(r->done * 100 / r->total) : 0;
    if (r->tty && pct != r->last_pct) {
      std::fprintf(stderr, "\rvu: unpacking %s %3d%%", r->name.c_str(), pct);
      r->last_pct = pct;
    }
  }
  *out = r->buf;
  return n;
}

// nettle's SHA-256 (libarchive's own crypto library): it uses the CPU's SHA extensions where
// there are some; libmd's portable code took longer than the whole tar xf of the archive.
std::string hex_of(struct sha256_ctx* sha) {
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_digest(sha, sizeof d, d);
  char hex[2 * SHA256_DIGEST_SIZE + 1];
  for (size_t i = 0; i < SHA256_DIGEST_SIZE; ++i) std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return hex;
}

using vu::remove_tree;


int fail(int code, const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "vu-unpack: %s: %s\n", what.c_str(), detail.c_str());
  return code;
}

// Removes `path` (relative to the tree, the current directory) unless it lies beyond a symlink
// or outside: whiteouts name paths of lower layers.
void remove_in_tree(const std::string& path) {
  struct stat st;
  std::string walked;
  for (size_t k = 0; (k = path.find('/', k)) != std::string::npos; ++k) {
    if (::lstat(path.substr(0, k).c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return;  // a symlink on the way
  }
  if (::lstat(path.c_str(), &st) < 0) return;
  if (S_ISDIR(st.st_mode)) remove_tree(path);
  else ::unlink(path.c_str());
}

// "a//b/./c/" -> "a/b/c": how the tree names what an entry writes.
std::string normal(const std::string& path) {
  std::string out;
  size_t k = 0;
  while (k <= path.size()) {
    size_t e = path.find('/', k);
    if (e == std::string::npos) e = path.size();
    std::string c = path.substr(k, e - k);
    if (!c.empty() && c != ".") out += (out.empty() ? "" : "/") + c;
    k = e + 1;
  }
  return out;
}

// The symlinks this unpack made. The tree is a fresh directory that only the archive (or the
// image's layers) writes, so an entry reaches outside through a symlink only through one of
// these: checking them is libarchive's ARCHIVE_EXTRACT_SECURE_SYMLINKS (an lstat of every
// component of every entry: 7 system calls an entry, most of the unpack's time) without a
// system call.
struct Symlinks {
  std::set<std::string> paths;
  bool on_the_way(const std::string& p) const {  // a directory of p (not p itself) is one
    for (size_t k = p.find('/'); k != std::string::npos; k = p.find('/', k + 1))
      if (paths.count(p.substr(0, k))) return true;
    return false;
  }
  void removed(const std::string& p) {  // p and everything below it are gone
    paths.erase(p);
    paths.erase(paths.lower_bound(p + "/"), paths.lower_bound(p + "0"));  // '0' follows '/'
  }
};

// Extracts one tar stream from `fd` into the current directory. oci: a layer (whiteouts,
// later layers replace what earlier ones made).
Failure extract(Reader& r, bool oci, Symlinks& links) {
  struct archive* in = archive_read_new();
  // In this process: zlib's inflate was faster than GNU gzip's in a child process beside the
  // unpack (the way tar xzf works), and so was the whole unpack (bench/rootfs.sh).
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  archive_read_support_format_gnutar(in);
  struct archive* out = archive_write_disk_new();
  int opts = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
             ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;  // symlinks: Symlinks
  if (oci) opts |= ARCHIVE_EXTRACT_UNLINK;  // an upper layer replaces a file of a lower one
  archive_write_disk_set_options(out, opts);
  Failure f;
  if (archive_read_open(in, &r, nullptr, read_cb, nullptr) != ARCHIVE_OK)
    f = {kBadArchive, archive_error_string(in) ? archive_error_string(in) : "not an archive"};
  std::set<std::string> made;  // this layer's paths (an opaque directory keeps them)
  struct archive_entry* e;
  long entries = 0;
  while (!f.code) {
    int rc = archive_read_next_header(in, &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      f = {kBadArchive, archive_error_string(in) ? archive_error_string(in) : "corrupt archive"};
      break;
    }
    ++entries;
    std::string path = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (path.compare(0, 2, "./") == 0) path.erase(0, 2);
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFCHR || type == AE_IFBLK) continue;  // skipped: a view has its own /dev
    if (oci) {
      size_t slash = path.rfind('/');
      std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
      std::string base = path.substr(dir.size());
      bool dotdot = path == ".." || path.compare(0, 3, "../") == 0 || path.find("/../") != std::string::npos ||
                    (path.size() >= 3 && path.compare(path.size() - 3, 3, "/..") == 0);
      if (dotdot || (!path.empty() && path[0] == '/')) {
        f = {kBadArchive, path + ": a name that leaves the tree"};
        break;
      }
      if (base == ".wh..wh..opq") {  // opaque: the lower layers' entries of dir go
        if (DIR* d = ::opendir(dir.empty() ? "." : dir.c_str())) {
          std::vector<std::string> gone;
          while (struct dirent* de = ::readdir(d))
            if (std::strcmp(de->d_name, ".") && std::strcmp(de->d_name, "..") && !made.count(dir + de->d_name))
              gone.push_back(dir + de->d_name);
          ::closedir(d);
          for (const std::string& g : gone) {
            remove_in_tree(g);
            links.removed(normal(g));
          }
        }
        continue;
      }
      if (base.compare(0, 4, ".wh.") == 0) {
        remove_in_tree(dir + base.substr(4));
        links.removed(normal(dir + base.substr(4)));
        continue;
      }
      made.insert(path);
    }
    archive_entry_set_perm(e, archive_entry_perm(e) & 01777);  // no set-id bits
    const std::string at = normal(path);
    const char* hardlink = archive_entry_hardlink(e);
    if (links.on_the_way(at) || (hardlink && links.on_the_way(normal(hardlink)))) {
      f = {kBadArchive, path + ": written through a symlink the archive made"};
      break;
    }
    if (links.paths.count(at)) {  // replaced, not followed (as GNU tar does)
      ::unlink(at.c_str());
      links.paths.erase(at);
    }
    rc = archive_write_header(out, e);
    if (rc < ARCHIVE_WARN) {
      const char* msg = archive_error_string(out);
      bool hostile = msg && (std::strstr(msg, "..") || std::strstr(msg, "bsolute") || std::strstr(msg, "symlink"));
      f = {hostile ? kBadArchive : kFailed, path + ": " + (msg ? msg : "refused")};
      break;
    }
    if (archive_entry_size(e) > 0) {
      const void* block;
      size_t size;
      la_int64_t offset;
      while ((rc = archive_read_data_block(in, &block, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out, block, size, offset) < ARCHIVE_WARN) {
          f = {kFailed, archive_error_string(out) ? archive_error_string(out) : "write failed"};
          break;
        }
      }
      if (!f.code && rc != ARCHIVE_EOF)
        f = {kBadArchive, archive_error_string(in) ? archive_error_string(in) : "truncated archive"};
    }
    if (!f.code && archive_write_finish_entry(out) < ARCHIVE_WARN)
      f = {kFailed, archive_error_string(out) ? archive_error_string(out) : "write failed"};
    if (!f.code && type == AE_IFLNK && !hardlink) links.paths.insert(at);
  }
  if (!f.code && entries == 0 && !oci) f = {kBadArchive, "no entries"};
  if (!f.code && archive_write_close(out) != ARCHIVE_OK)
    f = {kFailed, archive_error_string(out) ? archive_error_string(out) : "close failed"};
  archive_read_free(in);
  archive_write_free(out);
  if (r.tty) std::fprintf(stderr, "\r\033[K");
  return f;
}

// A fresh, locked tmp.XXXXXX in the cache (creating the cache), after removing the ones of
// killed unpacks.
Failure make_tmp(const std::string& cache, std::string* tmp) {
  for (size_t k = 1; k <= cache.size(); ++k)
    if ((k == cache.size() || cache[k] == '/') && ::mkdir(cache.substr(0, k).c_str(), 0700) < 0 && errno != EEXIST)
      return {kFailed, cache.substr(0, k) + ": " + std::strerror(errno)};
  for (const char* sub : {"/trees", "/by-stat"})
    if (::mkdir((cache + sub).c_str(), 0700) < 0 && errno != EEXIST)
      return {kFailed, cache + sub + ": " + std::strerror(errno)};
  *tmp = cache + "/tmp.XXXXXX";
  if (!::mkdtemp(tmp->data())) return {kFailed, *tmp + ": " + std::strerror(errno)};
  int lock = ::open(tmp->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // held until exit
  if (lock >= 0) ::flock(lock, LOCK_EX);
  if (DIR* d = ::opendir(cache.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "tmp.", 4) != 0 || cache + "/" + e->d_name == *tmp) continue;
      std::string stale = cache + "/" + e->d_name;
      int fd = ::open(stale.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) remove_tree(stale);
      if (fd >= 0) ::close(fd);
    }
    ::closedir(d);
  }
  return {};
}

// Moves the finished tree to trees/HEX (or drops it when another unpack got there first).
Failure publish(const std::string& tmp, const std::string& final_dir) {
  ::chmod(tmp.c_str(), 0755);
  if (::rename(tmp.c_str(), final_dir.c_str()) < 0) {
    int e = errno;
    remove_tree(tmp);
    if (e != EEXIST && e != ENOTEMPTY) return {kFailed, final_dir + ": " + std::strerror(e)};
  }
  return {};
}

int unpack_tar(const char* archive_path, const std::string& cache) {
  Reader r;
  r.fd = ::open(archive_path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (r.fd < 0 || ::fstat(r.fd, &st) < 0) return fail(kBadArchive, archive_path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(kBadArchive, archive_path, "not a regular file");
  r.total = st.st_size;
  r.tty = ::isatty(2);
  r.name = std::strrchr(archive_path, '/') ? std::strrchr(archive_path, '/') + 1 : archive_path;
  sha256_init(&r.sha);
  std::string tmp;
  if (Failure f = make_tmp(cache, &tmp); f.code) return fail(f.code, "cache", f.why);
  Failure f;
  if (::chdir(tmp.c_str()) < 0) f = {kFailed, std::strerror(errno)};
  Symlinks links;
  if (!f.code) f = extract(r, false, links);
  if (::chdir("/") < 0) {
  }
  if (f.code) {
    remove_tree(tmp);
    return fail(f.code, archive_path, f.why);
  }
  const std::string hex = hex_of(&r.sha);
  if (Failure p = publish(tmp, cache + "/trees/" + hex); p.code) return fail(p.code, "cache", p.why);
  std::string link = cache + "/by-stat/" + vu::image_cache::stat_key(st),
              link_tmp = link + ".new." + std::to_string(::getpid());
  if (::symlink(("../trees/" + hex).c_str(), link_tmp.c_str()) == 0 && ::rename(link_tmp.c_str(), link.c_str()) < 0)
    ::unlink(link_tmp.c_str());
  std::printf("%s/trees/%s\n", cache.c_str(), hex.c_str());
  return 0;
}

// ---- OCI image layouts ------------------------------------------------------------------

// The blob of "sha256:HEX" in the layout, read whole and checked against its digest.
bool read_blob(const std::string& layout, const std::string& digest, std::string* out, Failure* f) {
  if (digest.compare(0, 7, "sha256:") != 0 || digest.size() != 71 ||
      digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
    *f = {kBadArchive, "unsupported or malformed digest " + digest};
    return false;
  }
  std::string path = layout + "/blobs/sha256/" + digest.substr(7);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *f = {kBadArchive, path + ": " + std::strerror(errno)};
    return false;
  }
  struct sha256_ctx sha;
  sha256_init(&sha);
  char buf[1 << 16];
  ssize_t n;
  out->clear();
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && out->size() < (64u << 20)) {
    sha256_update(&sha, static_cast<size_t>(n), reinterpret_cast<const uint8_t*>(buf));
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (hex_of(&sha) != digest.substr(7)) {
    *f = {kBadArchive, digest + ": the blob's bytes do not match its digest"};
    return false;
  }
  return true;
}

std::string escape_line(std::string v) {
  for (size_t k = 0; (k = v.find('\n', k)) != std::string::npos; k += 2) v.replace(k, 1, "\\n");
  return v;
}

int unpack_oci(const std::string& layout, const std::string& tag, const std::string& cache) {
  using nlohmann::json;
  Failure f;
  std::string text, digest;
  // index.json (not a blob: no digest to check) -> the manifest with that tag.
  {
    int fd = ::open((layout + "/index.json").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(kBadArchive, layout + "/index.json", std::strerror(errno));
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < (1u << 20)) text.append(buf, static_cast<size_t>(n));
    ::close(fd);
  }
  json index = json::parse(text, nullptr, false);
  if (index.is_discarded() || !index["manifests"].is_array()) return fail(kBadArchive, layout + "/index.json", "not an OCI index");
  std::vector<std::string> tags;
  for (auto& m : index["manifests"]) {
    std::string name = m.contains("annotations") ? m["annotations"].value("org.opencontainers.image.ref.name", "") : "";
    tags.push_back(name.empty() ? "(untagged)" : name);
    if ((tag.empty() && index["manifests"].size() == 1) || (!tag.empty() && name == tag)) digest = m.value("digest", "");
  }
  if (digest.empty()) {
    std::string all;
    for (auto& t : tags) all += (all.empty() ? "" : ", ") + t;
    return fail(kBadArchive, layout, tag.empty() ? "several images (" + all + "): name one with oci:DIR:TAG"
                                                  : "no image tagged " + tag + " (it has: " + all + ")");
  }
  std::string manifest_text;
  if (!read_blob(layout, digest, &manifest_text, &f)) return fail(f.code, layout, f.why);
  json manifest = json::parse(manifest_text, nullptr, false);
  if (!manifest.is_discarded() && manifest.contains("manifests")) {  // a nested index: linux/amd64
    std::string sub;
    for (auto& m : manifest["manifests"])
      if (m.contains("platform") && m["platform"].value("os", "") == "linux" && m["platform"].value("architecture", "") == "amd64")
        sub = m.value("digest", "");
    if (sub.empty()) return fail(kBadArchive, layout, "no linux/amd64 image in " + digest);
    digest = sub;
    if (!read_blob(layout, digest, &manifest_text, &f)) return fail(f.code, layout, f.why);
    manifest = json::parse(manifest_text, nullptr, false);
  }
  if (manifest.is_discarded() || !manifest["layers"].is_array()) return fail(kBadArchive, digest, "not an image manifest");
  const std::string hex = digest.substr(7), final_dir = cache + "/trees/" + hex;
  std::string config_text;
  if (!read_blob(layout, manifest["config"].value("digest", ""), &config_text, &f)) return fail(f.code, layout, f.why);
  json config = json::parse(config_text, nullptr, false);
  if (config.is_discarded()) return fail(kBadArchive, layout, "the image config is not JSON");
  std::string defaults;
  json c = config.contains("config") ? config["config"] : json::object();
  for (auto& e : c.value("Env", json::array())) defaults += "env\t" + escape_line(e.get<std::string>()) + "\n";
  if (!c.value("WorkingDir", "").empty()) defaults += "workdir\t" + escape_line(c.value("WorkingDir", "")) + "\n";
  if (!c.value("User", "").empty()) defaults += "user\t" + escape_line(c.value("User", "")) + "\n";
  for (const char* k : {"Entrypoint", "Cmd"})
    if (c.contains(k) && c[k].is_array())
      for (auto& a : c[k]) defaults += "cmd\t" + escape_line(a.get<std::string>()) + "\n";

  struct stat st;
  if (::stat(final_dir.c_str(), &st) != 0) {
    std::string tmp;
    if (Failure m = make_tmp(cache, &tmp); m.code) return fail(m.code, "cache", m.why);
    if (::chdir(tmp.c_str()) < 0) f = {kFailed, std::strerror(errno)};
    size_t i = 0;
    Symlinks links;  // of every layer so far
    for (auto& layer : manifest["layers"]) {
      if (f.code) break;
      const std::string ld = layer.value("digest", "");
      ++i;
      if (ld.compare(0, 7, "sha256:") != 0 || ld.size() != 71 || ld.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
        f = {kBadArchive, "layer " + std::to_string(i) + ": malformed digest " + ld};
        break;
      }
      Reader r;
      std::string path = layout + "/blobs/sha256/" + ld.substr(7);
      r.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (r.fd < 0 || ::fstat(r.fd, &st) < 0) {
        f = {kBadArchive, path + ": " + std::strerror(errno)};
        break;
      }
      r.total = st.st_size;
      r.tty = ::isatty(2);
      r.name = "layer " + std::to_string(i) + "/" + std::to_string(manifest["layers"].size());
      sha256_init(&r.sha);
      f = extract(r, true, links);
      // The rest of the blob (past the tar's end) counts for its digest too.
      const void* unused;
      while (!f.code && read_cb(nullptr, &r, &unused) > 0) {
      }
      ::close(r.fd);
      if (!f.code && hex_of(&r.sha) != ld.substr(7)) f = {kBadArchive, ld + ": the layer's bytes do not match its digest"};
    }
    if (::chdir("/") < 0) {
    }
    if (f.code) {
      remove_tree(tmp);
      return fail(f.code, layout, f.why);
    }
    if (Failure p = publish(tmp, final_dir); p.code) return fail(p.code, "cache", p.why);
  }
  std::printf("%s\n%s", final_dir.c_str(), defaults.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);
  if (argc == 5 && std::strcmp(argv[1], "--oci") == 0) return unpack_oci(argv[2], argv[3], argv[4]);
  if (argc == 3) return unpack_tar(argv[1], argv[2]);
  std::fprintf(stderr, "usage: vu-unpack ARCHIVE CACHE | vu-unpack --oci DIR TAG CACHE\n");
  return kFailed;
}
