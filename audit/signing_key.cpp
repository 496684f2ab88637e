#include "audit/signing_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "audit/log_files.hpp"
#include "crypto/keys.hpp"

namespace gerbang::audit {

namespace {

constexpr std::string_view key_prefix = "PRIVATE+KEY+";

// Wipes a std::string that held secret text, then empties it.
void wipe(std::string& s) noexcept {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

}  // namespace

std::optional<std::string> generate_signing_key_file(const std::string& path, const std::string& name,
                                                     std::string& error) {
  if (!is_valid_key_name(name)) {
    error = "\"" + name + "\" is not a valid key name (non-empty UTF-8, no spaces, no '+')";
    return std::nullopt;
  }
  crypto::Ed25519Seed seed;
  crypto::random_bytes(seed.bytes());
  crypto::Ed25519KeyPair pair = crypto::ed25519_from_seed(seed);
  auto vk = make_verifier_key(name, pair.public_key);
  if (!vk) {
    error = "invalid key name";
    return std::nullopt;
  }
  std::uint8_t typed[1 + crypto::ed25519_seed_bytes];
  typed[0] = note_sig_type_ed25519;
  std::memcpy(typed + 1, seed.data(), crypto::ed25519_seed_bytes);
  std::string b64 = crypto::base64_encode_secret(typed);
  sodium_memzero(typed, sizeof typed);
  std::string text = std::string(key_prefix) + name + "+" + hex8(vk->key_id) + "+" + b64 + "\n";
  wipe(b64);

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    wipe(text);
    error = err == EEXIST ? path + " already exists; refusing to overwrite a key"
                          : "cannot create " + path + ": " + std::strerror(err);
    return std::nullopt;
  }
  bool ok = ::fchmod(fd, 0600) == 0;  // in case the umask was unusual
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  wipe(text);
  if (!ok) {
    ::unlink(path.c_str());
    error = "cannot write " + path + ": " + std::strerror(err);
    return std::nullopt;
  }
  return format_verifier_key(*vk);
}

std::optional<NoteSigner> load_signing_key_file(const std::string& path, std::string& error) {
  if (auto problem = crypto::private_key_file_problem(path)) {
    error = *problem;
    return std::nullopt;
  }
  std::string text;
  if (!files::read_whole_file(path, text, error)) return std::nullopt;
  const auto bad = [&](const char* why) -> std::optional<NoteSigner> {
    wipe(text);
    error = "private key " + path + " is not a gerbang audit key file: " + why;
    return std::nullopt;
  };
  std::string_view s = text;
  if (!s.ends_with('\n')) return bad("it must be one line ending in a newline");
  s.remove_suffix(1);
  if (!s.starts_with(key_prefix)) return bad("it must start with PRIVATE+KEY+");
  s.remove_prefix(key_prefix.size());
  const std::size_t p1 = s.find('+');
  if (p1 == std::string_view::npos) return bad("missing key ID");
  const std::size_t p2 = s.find('+', p1 + 1);
  if (p2 == std::string_view::npos || p2 - p1 - 1 != 8) return bad("the key ID must be 8 hex digits");
  const std::string name(s.substr(0, p1));
  const std::string id_hex(s.substr(p1 + 1, 8));
  auto typed = crypto::base64_decode(s.substr(p2 + 1));
  if (!typed || typed->size() != 1 + crypto::ed25519_seed_bytes || (*typed)[0] != note_sig_type_ed25519) {
    if (typed) sodium_memzero(typed->data(), typed->size());
    return bad("the key must be base64 of 0x01 followed by a 32-byte Ed25519 seed");
  }
  crypto::Ed25519Seed seed;
  std::memcpy(seed.data(), typed->data() + 1, crypto::ed25519_seed_bytes);
  sodium_memzero(typed->data(), typed->size());
  wipe(text);
  crypto::Ed25519KeyPair pair = crypto::ed25519_from_seed(seed);
  auto signer = NoteSigner::create(name, std::move(pair));
  if (!signer) {
    error = "private key " + path + ": invalid key name \"" + name + "\"";
    return std::nullopt;
  }
  if (hex8(signer->key_id()) != id_hex) {
    error = "private key " + path + ": the key ID does not match the name and key (damaged file?)";
    return std::nullopt;
  }
  return signer;
}

}  // namespace gerbang::audit
