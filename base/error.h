// base/error.h — errors are values.
//
// An Error is made where a syscall (or a check) fails, carries the syscall name, the errno and
// what it was operating on, gains context on the way up, and is printed once, by main().
//
//   vu::Result<UniqueFd> open_dir(const std::string& p) {
//     int fd = ::open(p.c_str(), O_DIRECTORY | O_CLOEXEC);
//     if (fd < 0) return vu::Error::sys("open", errno, p);
//     return UniqueFd(fd);
//   }
//   UniqueFd fd = VU_TRY(open_dir("/tmp"));      // returns the Error to our caller on failure
//
// Each Error has a Kind; runtime/ turns the Kind into the process exit status (see exit_codes.h),
// so "what failed" and "how vu exits" are decided in one place.
// Thread-safety: plain values. Not for use between clone() and execve() (allocates).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vu {

enum class ErrorKind {
  kUsage,     // the user's input is wrong: option, value, config file, missing source path
  kSetup,     // the kernel or the system refused to build the view
  kDenied,    // a needed kernel feature is unavailable here (e.g. user namespaces)
  kNotFound,  // the command to run does not exist
  kNoExec,    // the command exists but cannot be executed
};

class [[nodiscard]] Error {
 public:
  // A failed syscall: "OP OBJECT: strerror(ERR)".
  static Error sys(std::string_view op, int err, std::string_view object = {},
                   ErrorKind kind = ErrorKind::kSetup);
  // A failed check that is not a syscall.
  static Error usage(std::string message);
  static Error make(ErrorKind kind, std::string message);

  // Prepends "CONTEXT: " to the message (context on the way up).
  Error&& context(std::string_view what) &&;
  // Adds a line telling the user what to do about it.
  Error&& hint(std::string_view text) &&;
  Error&& kind(ErrorKind k) && {
    kind_ = k;
    return std::move(*this);
  }

  ErrorKind kind() const { return kind_; }
  int err() const { return err_; }  // 0 when not from a syscall
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }
  // message, then "hint: …" on its own line when there is one.
  std::string to_string() const;

 private:
  Error(ErrorKind k, int err, std::string msg) : kind_(k), err_(err), message_(std::move(msg)) {}
  ErrorKind kind_;
  int err_;
  std::string message_;
  std::string hint_;
};

// Result<T>: a T or an Error (C++20 stand-in for std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Ok) {}
  Result(Error error) : e_(std::in_place_index<1>, std::move(error)) {}
  bool ok() const { return e_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return std::get<1>(e_); }
  Error&& error() && { return std::get<1>(std::move(e_)); }

 private:
  std::variant<std::monostate, Error> e_;
};

// strerror-like name of an errno ("EPERM"); "E?" for unknown values. Async-signal-safe.
const char* errno_name(int err);

}  // namespace vu

// VU_TRY(expr): evaluates a Result; on error returns it from the enclosing function, otherwise
// yields the value. VU_TRY_VOID for Result<void>. (GNU statement expressions, as gcc and clang.)
#define VU_TRY(expr)                                       \
  ({                                                       \
    auto vu_try_r_ = (expr);                               \
    if (!vu_try_r_.ok()) return std::move(vu_try_r_).error(); \
    std::move(vu_try_r_).value();                          \
  })
#define VU_TRY_VOID(expr)                                  \
  do {                                                     \
    auto vu_tryv_r_ = (expr);                               \
    if (!vu_tryv_r_.ok()) return std::move(vu_tryv_r_).error(); \
  } while (0)
