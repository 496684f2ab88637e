// Key-file hygiene shared by every module that reads private keys.
// Thread-safety: pure functions over the filesystem.
#pragma once

#include <optional>
#include <string>

namespace gerbang::crypto {

// Returns a human-readable problem with a private key file, or nullopt if it is acceptable:
// missing/unreadable, not a regular file, or accessible by group or others (mode & 077), e.g.
// "private key /etc/gerbang/server.key has mode 0644; it must not be accessible by group or others (chmod 600)".
std::optional<std::string> private_key_file_problem(const std::string& path);

}  // namespace gerbang::crypto
