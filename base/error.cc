#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace vu {

Error Error::sys(std::string_view op, int err, std::string_view object, ErrorKind kind) {
  std::string m(op);
  if (!object.empty()) {
    m += ' ';
    m += object;
  }
  m += ": ";
  m += std::strerror(err);
  return Error(kind, err, std::move(m));
}

Error Error::usage(std::string message) { return Error(ErrorKind::kUsage, 0, std::move(message)); }

Error Error::make(ErrorKind kind, std::string message) { return Error(kind, 0, std::move(message)); }

Error&& Error::context(std::string_view what) && {
  message_.insert(0, std::string(what) + ": ");
  return std::move(*this);
}

Error&& Error::hint(std::string_view text) && {
  if (!hint_.empty()) hint_ += "\n      ";
  hint_ += text;
  return std::move(*this);
}

std::string Error::to_string() const {
  if (hint_.empty()) return message_;
  return message_ + "\n  hint: " + hint_;
}

const char* errno_name(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD)
    E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
    E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE)
    E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP)
    E(EOPNOTSUPP) E(EUSERS) E(EOVERFLOW)
#undef E
    default:
      return "E?";
  }
}

}  // namespace vu
