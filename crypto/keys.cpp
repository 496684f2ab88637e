#include "crypto/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace gerbang::crypto {

namespace {

std::string octal_mode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::optional<std::string> private_key_file_problem(const std::string& path) {
  if (path.empty()) return std::string("private key path is empty");

  // stat() follows symlinks on purpose: what matters is who can read the bytes, i.e. the target's mode.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return "private key " + path + " does not exist";
    return "private key " + path + " cannot be accessed: " + std::strerror(err);
  }
  if (!S_ISREG(st.st_mode)) return "private key " + path + " is not a regular file";
  if ((st.st_mode & 077) != 0) {
    return "private key " + path + " has mode " + octal_mode(st.st_mode) +
           "; it must not be accessible by group or others (chmod 600)";
  }
  // Mode 0600 owned by someone else is still unreadable for us; say so now rather than at first use.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    return "private key " + path + " is not readable: " + std::strerror(err);
  }
  ::close(fd);
  return std::nullopt;
}

}  // namespace gerbang::crypto
