// Typed wrappers over the libsodium calls gerbang uses: Ed25519 signatures, constant-time comparison,
// randomness, and the strict base64 and hex codecs used by the audit log's text formats.
//
// THREAD SAFETY: every function is safe to call from any thread once init_sodium() has returned true
// (libsodium's own contract: key generation and signing are thread-safe after sodium_init()).
// PRECONDITION: init_sodium() runs once in main before any thread starts; false is fatal (STYLE.md §13).
// ERRORS: verification returns bool with no reason, like crypto_sign_verify_detached (no oracle).
// Decoders return std::nullopt on any invalid input. Nothing here throws except std::bad_alloc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret.hpp"

namespace gerbang::crypto {

inline constexpr std::size_t ed25519_public_key_bytes = 32;  // crypto_sign_PUBLICKEYBYTES
inline constexpr std::size_t ed25519_secret_key_bytes = 64;  // crypto_sign_SECRETKEYBYTES (seed || public key)
inline constexpr std::size_t ed25519_seed_bytes = 32;        // crypto_sign_SEEDBYTES
inline constexpr std::size_t ed25519_signature_bytes = 64;   // crypto_sign_BYTES

using Ed25519PublicKey = std::array<std::uint8_t, ed25519_public_key_bytes>;
using Ed25519Signature = std::array<std::uint8_t, ed25519_signature_bytes>;
using Ed25519SecretKey = SecretBytes<ed25519_secret_key_bytes>;
using Ed25519Seed = SecretBytes<ed25519_seed_bytes>;

struct Ed25519KeyPair {
  Ed25519PublicKey public_key{};
  Ed25519SecretKey secret_key;
};

// sodium_init(); idempotent. Call once from main before starting threads; false means abort startup.
[[nodiscard]] bool init_sodium() noexcept;

// Bytes of a string, for signing or hashing text without copying.
inline std::span<const std::uint8_t> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A fresh key pair from the system CSPRNG.
Ed25519KeyPair ed25519_generate();
// The deterministic key pair for a 32-byte RFC 8032 seed (for stored keys and known-answer tests).
Ed25519KeyPair ed25519_from_seed(const Ed25519Seed& seed);

// RFC 8032 Ed25519 signature of msg.
Ed25519Signature sign_detached(std::span<const std::uint8_t> msg, const Ed25519SecretKey& secret_key) noexcept;

// True only if sig is a valid signature of msg under public_key. No reason is given on failure.
[[nodiscard]] bool verify_detached(const Ed25519Signature& sig, std::span<const std::uint8_t> msg,
                                   const Ed25519PublicKey& public_key) noexcept;

// Constant-time equality (sodium_memcmp) for secrets and MACs. Lengths are treated as public: different
// lengths return false at once.
[[nodiscard]] bool equal_ct(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

// Fills out from the system CSPRNG (randombytes_buf).
void random_bytes(std::span<std::uint8_t> out) noexcept;

// RFC 4648 §4 standard base64 with padding, for public bytes (hashes, signatures, public keys): OpenSSL's
// EVP_EncodeBlock, table lookups whose timing depends on the bytes. Receipts and proofs call it per exchange.
std::string base64_encode(std::span<const std::uint8_t> bin);
// The same encoding in constant time (sodium_bin2base64), for secret bytes (private keys, seeds).
std::string base64_encode_secret(std::span<const std::uint8_t> bin);
// Strict decoder: the whole input must be canonical padded standard base64. Whitespace, missing or
// extra padding, the URL-safe alphabet and non-zero trailing bits are all rejected. "" decodes to {}.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view b64);
// As base64_decode, and the result must be exactly N bytes.
template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> base64_decode_exact(std::string_view b64) {
  auto v = base64_decode(b64);
  if (!v || v->size() != N) {
    return std::nullopt;
  }
  std::array<std::uint8_t, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    out[i] = (*v)[i];
  }
  return out;
}

// Lowercase hex of public bytes (hashes, key ids): a table lookup per nibble, not constant time. No secret is
// written in hex anywhere; one would need sodium_bin2hex.
std::string hex_encode(std::span<const std::uint8_t> bin);

}  // namespace gerbang::crypto
