#include "runtime/rootfs_pvm.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "base/log.h"
#include "base/strings.h"
#include "pvm/cow.h"
#include "pvm/rootfs_exec.h"

namespace vu {

namespace {
// The "GLIBC_2.x" names in a file's bytes.
std::set<std::string> glibc_names(const std::string& bytes) {
  std::set<std::string> out;
  for (size_t k = 0; (k = bytes.find("GLIBC_2.", k)) != std::string::npos; k += 8) {
    size_t e = k + 8;
    while (e < bytes.size() && (std::isdigit(static_cast<unsigned char>(bytes[e])) || bytes[e] == '.')) ++e;
    if (e < bytes.size() && bytes[e] == '\0' && e > k + 8) out.insert(bytes.substr(k, e - k));
  }
  return out;
}
}  // namespace

bool glibc_versions_met(const std::string& lib, const std::string& libc) {
  std::set<std::string> need = glibc_names(lib), have = glibc_names(libc);
  if (have.empty()) return false;
  for (const std::string& n : need)
    if (!have.count(n)) return false;
  return true;
}

Result<void> rootfs_pvm_cow_root(const ViewSpec& spec, const std::string& tree, pvm::Config& cfg) {
  const std::string& layer = spec.rootfs_layer->layer;
  VU_TRY_VOID(pvm::Cow::prepare_layer(layer, tree));
  cfg.map.add({"/", tree, false, VU_TRY(pvm::Cow::open(layer, tree, cfg.uid, cfg.gid))});
  return Ok{};
}

Result<void> rootfs_pvm_config(const ViewSpec& spec, pvm::Config& cfg) {
  if (!spec.rootfs) return Ok{};
  cfg.rootfs = true;
  cfg.exe = std::make_shared<pvm::ExeTable>();
  if (cfg.accel_lib.empty()) return Ok{};
  // The tree's libc, as its programs' loader finds it (Debian's multiarch directory first).
  std::string libc;
  for (const char* p : {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                        "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6", "/usr/lib/libc.so.6"}) {
    pvm::Resolved r = cfg.map.resolve({}, p, true, {});
    if (r.exists && S_ISREG(r.st.st_mode)) {
      libc = r.host;
      break;
    }
  }
  auto lib_bytes = sys::read_file(cfg.accel_lib, 16 << 20);
  std::string libc_bytes;
  if (!libc.empty())
    if (auto b = sys::read_file(libc, 64 << 20)) libc_bytes = std::move(*b);
  if (!lib_bytes || !glibc_versions_met(*lib_bytes, libc_bytes)) {
    VU_LOG_DEBUG("pvm --rootfs: the fast path stays off (the tree's libc "
                 << (libc.empty() ? std::string("is not glibc") : libc + " lacks a version it needs") << ")");
    cfg.accel_lib.clear();
    return Ok{};
  }
  // Seen in the view where no listing shows it; LD_PRELOAD names it there.
  cfg.map.add({kRootfsAccelView, cfg.accel_lib, true});
  cfg.accel_lib = kRootfsAccelView;
  return Ok{};
}

}  // namespace vu
