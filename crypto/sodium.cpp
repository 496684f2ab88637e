#include "crypto/sodium.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <climits>

namespace gerbang::crypto {

namespace {
// libsodium's pointer parameters are declared nonnull even when the length is zero; an empty span may
// carry a null data(), so point at this instead.
constexpr std::uint8_t empty_input[1] = {0};

const unsigned char* nonnull(std::span<const std::uint8_t> s) noexcept {
  return s.empty() ? empty_input : s.data();
}
}  // namespace

static_assert(ed25519_public_key_bytes == crypto_sign_PUBLICKEYBYTES);
static_assert(ed25519_secret_key_bytes == crypto_sign_SECRETKEYBYTES);
static_assert(ed25519_seed_bytes == crypto_sign_SEEDBYTES);
static_assert(ed25519_signature_bytes == crypto_sign_BYTES);

bool init_sodium() noexcept { return sodium_init() >= 0; }

Ed25519KeyPair ed25519_generate() {
  Ed25519KeyPair kp;
  // Cannot fail: the Ed25519 implementation returns 0 unconditionally.
  crypto_sign_keypair(kp.public_key.data(), kp.secret_key.data());
  return kp;
}

Ed25519KeyPair ed25519_from_seed(const Ed25519Seed& seed) {
  Ed25519KeyPair kp;
  crypto_sign_seed_keypair(kp.public_key.data(), kp.secret_key.data(), seed.data());
  return kp;
}

Ed25519Signature sign_detached(std::span<const std::uint8_t> msg, const Ed25519SecretKey& secret_key) noexcept {
  Ed25519Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, nonnull(msg), msg.size(), secret_key.data());
  return sig;
}

bool verify_detached(const Ed25519Signature& sig, std::span<const std::uint8_t> msg,
                     const Ed25519PublicKey& public_key) noexcept {
  return crypto_sign_verify_detached(sig.data(), nonnull(msg), msg.size(), public_key.data()) == 0;
}

bool equal_ct(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void random_bytes(std::span<std::uint8_t> out) noexcept {
  if (!out.empty()) {
    randombytes_buf(out.data(), out.size());
  }
}

std::string base64_encode(std::span<const std::uint8_t> bin) {
  // EVP_EncodeBlock takes an int length and writes 4 bytes per started 3 and a NUL; no line breaks.
  if (bin.size() > static_cast<std::size_t>(INT_MAX / 4 * 3)) return base64_encode_secret(bin);
  std::string out((bin.size() + 2) / 3 * 4 + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), nonnull(bin), static_cast<int>(bin.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_encode_secret(std::span<const std::uint8_t> bin) {
  constexpr int variant = sodium_base64_VARIANT_ORIGINAL;
  // sodium_base64_ENCODED_LEN counts the terminating NUL.
  std::string out(sodium_base64_ENCODED_LEN(bin.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), nonnull(bin), bin.size(), variant);
  out.resize(out.size() - 1);
  return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view b64) {
  if (b64.empty()) {
    return std::vector<std::uint8_t>{};
  }
  // Padded base64 is always a whole number of 4-character groups.
  if (b64.size() % 4 != 0) {
    return std::nullopt;
  }
  // libsodium 1.0.18 decodes every byte >= 0x80 as the sextet 63, so non-canonical spellings of the same
  // bytes would be accepted: check the alphabet here.
  for (const char c : b64) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                    c == '/' || c == '=';
    if (!ok) return std::nullopt;
  }
  std::vector<std::uint8_t> out(b64.size() / 4 * 3);
  std::size_t bin_len = 0;
  // ignore = nullptr: no whitespace or other characters are skipped. b64_end = nullptr: libsodium then
  // fails unless the entire input was consumed. libsodium also rejects non-zero trailing bits, so every
  // accepted string is the one canonical encoding of its bytes.
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &bin_len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(bin_len);
  return out;
}

std::string hex_encode(std::span<const std::uint8_t> bin) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(bin.size() * 2, '\0');
  char* p = out.data();
  for (const std::uint8_t b : bin) {
    *p++ = digits[b >> 4U];
    *p++ = digits[b & 0xFU];
  }
  return out;
}

}  // namespace gerbang::crypto
