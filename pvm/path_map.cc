#include "pvm/path_map.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>

#include "pvm/cow.h"
#include "pvm/host_at.h"

namespace vu::pvm {

namespace {
constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS

std::string join(const std::vector<std::string>& comps) {
  if (comps.empty()) return "/";
  std::string s;
  for (const std::string& c : comps) s += "/" + c;
  return s;
}

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string child_of(const std::string& dir, std::string_view name) {
  std::string s = dir;
  if (s.empty() || s.back() != '/') s += '/';
  s += name;
  return s;
}

std::string dirname(const std::string& p) {
  size_t k = p.rfind('/');
  if (k == std::string::npos || k == 0) return "/";
  return p.substr(0, k);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// /proc/PID/{fd/N,cwd,exe,root,task/TID/…}: links the kernel follows to an object, not a path.
bool is_magic_dir(const std::string& host_dir) {
  if (host_dir.compare(0, 6, "/proc/") != 0) return false;
  std::vector<std::string> c = split(host_dir);
  return c.size() >= 2 && all_digits(c[1]);
}
}  // namespace

std::string normalize(std::string_view path) {
  std::vector<std::string> c = split(path);
  std::erase(c, ".");
  return join(c);
}

bool is_within(std::string_view path, std::string_view dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}

void PathMap::add(Mount m) {
  m.view = normalize(m.view);
  has_cow_ = has_cow_ || m.cow;
  std::erase_if(mounts_, [&](const Mount& old) { return is_within(old.view, m.view); });
  mounts_.push_back(std::move(m));
}

const Mount* PathMap::covering(std::string_view view) const {
  const Mount* best = nullptr;
  for (const Mount& m : mounts_)
    if (is_within(view, m.view) && (!best || m.view.size() > best->view.size())) best = &m;
  return best;
}

const Mount* PathMap::mountpoint(std::string_view view) const {
  for (const Mount& m : mounts_)
    if (m.view == view) return &m;
  return nullptr;
}

std::string PathMap::to_host(std::string_view view) const {
  const Mount* m = covering(view);
  if (!m) return std::string(view);
  std::string rest(view.substr(m->view == "/" ? 0 : m->view.size()));
  if (rest.empty()) return m->host;
  return m->host == "/" ? rest : m->host + rest;
}

std::string PathMap::to_view(std::string_view host) const {
  const Mount* best = nullptr;
  std::string_view best_host;
  for (const Mount& m : mounts_) {
    // A copy-on-write directory is seen through both of its layers.
    for (std::string_view h : {std::string_view(m.host), m.cow ? std::string_view(m.cow->upper()) : std::string_view()})
      if (!h.empty() && is_within(host, h) && (!best || h.size() > best_host.size())) best = &m, best_host = h;
  }
  if (best) {
    std::string rest(host.substr(best_host == "/" ? 0 : best_host.size()));
    if (rest.empty()) return best->view;
    return best->view == "/" ? rest : best->view + rest;
  }
  if (covering(host)) return {};  // hidden under a mount
  return std::string(host);
}

bool PathMap::has_mounts_below(std::string_view view) const {
  for (const Mount& m : mounts_)
    if (m.view != view && is_within(m.view, view)) return true;
  return false;
}

Resolved PathMap::resolve(const Start& start, std::string_view path, bool follow, Caller caller) const {
  Resolved r;
  if (path.empty()) {
    r.err = ENOENT;
    return r;
  }
  const bool trailing_slash = path.back() == '/';
  if (trailing_slash) follow = true;
  r.trailing_slash = trailing_slash;
  std::vector<std::string> cur_view;
  std::string cur_host;
  if (path[0] == '/') {
    cur_host = to_host("/");
    if (cur_host != "/") r.moved = true;  // --rootfs: the view's / is a tree (the host's lookup differs)
  } else {
    cur_view = split(start.view);
    cur_host = start.host;
  }
  std::deque<std::string> rest;
  for (std::string& c : split(path)) rest.push_back(std::move(c));
  int links = 0;
  bool final_is_current = rest.empty();  // "/" or "."-only paths name the start itself
  // Below a copy-on-write directory: the state of the directory the walk stands in (its view
  // path; rebuilt from the cow's root after `..` or a symlink moved the walk elsewhere).
  std::string cow_dir_view;
  Cow::Dir cow_dir;
  // A relative walk that starts in a layer's own directory and stays in directories only the
  // layer has (no lower one merged in, no symlink, no `..`) is the host's own lookup from the
  // same start: the kernel may run the call (not moved). Anything else below a cow is moved.
  bool cow_plain = path[0] != '/';

  while (!rest.empty()) {
    std::string c = std::move(rest.front());
    rest.pop_front();
    const bool last = rest.empty();
    if (c == ".") {
      if (last) final_is_current = true;
      continue;
    }
    if (c == "..") {
      cow_plain = false;
      if (!cur_view.empty()) {
        std::string old_host = cur_host;
        cur_view.pop_back();
        cur_host = to_host(join(cur_view));
        if (cur_host != dirname(old_host)) r.moved = true;
      }
      if (last) final_is_current = true;
      continue;
    }
    // /proc/self → /proc/TGID, /proc/thread-self → /proc/TGID/task/TID (the caller's, not ours).
    if (cur_view.size() == 1 && cur_view[0] == "proc" && cur_host == "/proc" &&
        (c == "self" || c == "thread-self") && caller.tgid > 0) {
      if (c == "thread-self") {
        rest.push_front(std::to_string(caller.tid));
        rest.push_front("task");
      }
      rest.push_front(std::to_string(caller.tgid));
      continue;
    }
    cur_view.push_back(c);
    std::string v = join(cur_view);
    if (const Mount* m = mountpoint(v)) {
      cur_host = m->host;
      r.moved = true;
      cow_plain = false;
      if (last) {
        final_is_current = true;
        r.mountpoint = true;
      }
      continue;
    }
    std::string h;
    struct stat st;
    const Mount* cm = has_cow_ ? covering(v) : nullptr;
    std::string cow_rel;  // below a cow: the name's path in its layer (cow_layer)
    int cow_layer = 0;
    if (cm && cm->cow) {
      // A merged lookup: the layer first, then the lower directory (pvm/cow.h).
      const std::string parent_view = dirname(v);
      const std::string prel = parent_view == cm->view ? "." : parent_view.substr(cm->view == "/" ? 1 : cm->view.size() + 1);
      if (cow_dir_view != parent_view) {
        CowNode pn;
        struct stat pst;
        if (int e = cm->cow->lookup(prel, &pn, &pst, &cow_dir)) {
          r.err = e;
          return r;
        }
        if (!S_ISDIR(pst.st_mode)) {
          r.err = ENOTDIR;
          return r;
        }
        cow_dir_view = parent_view;
      }
      if (!cow_plain || cow_dir.lower || !is_within(cur_host, cm->cow->upper())) {
        cow_plain = false;
        r.moved = true;
      }
      CowNode n;
      Cow::Dir next_dir;  // the walk goes on: the lower directory opened for the next step
      const std::string rel = prel == "." ? c : prel + "/" + c;
      if (int e = cm->cow->child(prel, cow_dir, c, &n, &st, last ? nullptr : &next_dir)) {
        if (n.whiteout) r.moved = true;  // the host sees the whiteout itself
        if (last && e == ENOENT) {  // a name to create, in the layer
          r.view = v;
          r.host = cm->cow->host_of(rel, 1) + (trailing_slash ? "/" : "");
          r.mount = cm;
          r.cow = cm->cow.get();
          r.rel = rel;
          r.node = n;
          return r;
        }
        r.err = e;
        return r;
      }
      h = cm->cow->host_of(rel, n.layer);
      cow_rel = rel;
      cow_layer = n.layer;
      if (S_ISDIR(st.st_mode)) {
        cow_dir = last ? Cow::dir_of(n, st) : std::move(next_dir);
        cow_dir_view = v;
      }
      if (last && !(S_ISLNK(st.st_mode) && follow)) {
        r.view = v;
        r.host = h;
        r.st = st;
        r.exists = true;
        r.mount = cm;
        r.cow = cm->cow.get();
        r.rel = rel;
        r.node = n;
        if (trailing_slash && !S_ISDIR(st.st_mode)) r.err = ENOTDIR;
        return r;
      }
    } else if (h = child_of(cur_host, c); host_lstat(h, &st) < 0) {
      int e = errno;
      if (last && e == ENOENT) {  // a name to create
        r.view = v;
        // "new/": the host call sees the slash too (mkdir makes it; mknod, symlink, link:
        // ENOENT; rename of a file onto it: ENOTDIR; open O_CREAT: EISDIR).
        r.host = trailing_slash ? h + "/" : h;
        r.mount = covering(v);
        r.trailing_slash = trailing_slash;
        return r;
      }
      if (e == ENAMETOOLONG && c.size() > NAME_MAX) {
        // A name the host's filesystem cannot hold: where, for the FUSE programs of
        // environment A, whose limit may be another (fuse_long_name, pvm/fuse_client.h).
        r.view = v;
        r.host = h;
        r.mount = covering(v);
        r.trailing_slash = trailing_slash;
        r.long_name = last ? 2 : 1;
      }
      r.err = e;
      return r;
    }
    if (S_ISLNK(st.st_mode) && (!last || follow)) {
      cow_plain = false;
      if (r.cow || (cm && cm->cow)) r.moved = true;
      char buf[4096];
      // Below a cow, read beneath its layer's root (the lower tree may change meanwhile).
      ssize_t n = cow_layer ? cm->cow->read_link(cow_rel, cow_layer, buf, sizeof buf - 1)
                            : host_readlink(h, buf, sizeof buf - 1);
      if (n < 0) {
        r.err = errno;
        return r;
      }
      std::string target(buf, static_cast<size_t>(n));
      cur_view.pop_back();
      if (is_magic_dir(cur_host)) {
        if (target.empty() || target[0] != '/' || target.ends_with(" (deleted)")) {
          // A pipe, socket or anonymous inode, or a file with no name left (unlinked, O_TMPFILE):
          // the link itself is the way to the object.
          if (!last) {
            r.err = ENOTDIR;
            return r;
          }
          r.view = v;
          r.host = h;
          if (host_stat(h, &r.st) < 0) {
            r.err = errno;
            return r;
          }
          r.exists = true;
          return r;
        }
        // The kernel follows the object; so do we, to its place in the view.
        std::string view_of = to_view(target);
        cur_view = split(view_of.empty() ? target : view_of);
        cur_host = target;
        if (last) final_is_current = true;
        continue;
      }
      if (++links > kMaxSymlinks) {
        r.err = ELOOP;
        return r;
      }
      if (target.empty()) {
        r.err = ENOENT;
        return r;
      }
      std::vector<std::string> tc = split(target);
      if (trailing_slash && last) tc.push_back(".");
      for (auto it = tc.rbegin(); it != tc.rend(); ++it) rest.push_front(*it);
      if (target[0] == '/') {
        cur_view.clear();
        cur_host = to_host("/");
      }
      if (rest.empty()) final_is_current = true;  // "/" as a target
      continue;
    }
    if (!last && !S_ISDIR(st.st_mode)) {
      r.err = ENOTDIR;
      return r;
    }
    cur_host = h;
    if (last) {
      r.view = v;
      r.host = h;
      r.st = st;
      r.exists = true;
      r.mount = covering(v);
      if (trailing_slash && !S_ISDIR(st.st_mode)) r.err = ENOTDIR;
      return r;
    }
  }
  if (final_is_current || rest.empty()) {
    r.view = join(cur_view);
    r.host = cur_host;
    r.mount = covering(r.view);
    r.mountpoint = r.mountpoint || mountpoint(r.view) != nullptr;
    if (r.mount && r.mount->cow) {  // "." or ".." below (or at) a copy-on-write directory
      const Mount* cm = r.mount;
      r.moved = true;
      r.cow = cm->cow.get();
      r.rel = r.view == cm->view ? "." : r.view.substr(cm->view == "/" ? 1 : cm->view.size() + 1);
      if (int e = cm->cow->lookup(r.rel, &r.node, &r.st)) {
        r.err = e;
        return r;
      }
      r.host = cm->cow->host_of(r.rel, r.node.layer);
      r.exists = true;
      return r;
    }
    if (host_lstat(cur_host, &r.st) < 0) {
      r.err = errno;
      return r;
    }
    r.exists = true;
  }
  return r;
}

}  // namespace vu::pvm
