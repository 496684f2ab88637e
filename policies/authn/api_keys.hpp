// API keys: format, hashing and the per-generation index.
//
// A key is "<id>.<secret>": `id` is public ([a-z0-9]{8,32}, the lookup handle, shown in logs) and `secret` is
// 32 random bytes in unpadded base64url (43 characters). Only a hash of the key is stored in the config:
//
//   hash = "blake2b:" || hex( BLAKE2b-256( "gerbang-api-key-v1" || 0x00 || id || 0x00 || secret ) )
//
// with BLAKE2b = libsodium's crypto_generichash (unkeyed; the domain string and the id make the hash specific
// to gerbang and to that key id, so a hash cannot be moved to another id). Why not a password hash (argon2id
// via crypto_pwhash_str): a password hash defends low-entropy secrets against offline guessing and costs tens of
// milliseconds per request. Our secrets are 256 random bits chosen by gerbangctl, so a guess costs 2^255
// hashes whatever the function; one fast hash per request keeps verification at about a microsecond and
// keeps a flood of bad keys from burning the CPU. The cost is that a secret must never be chosen by a human.
//
// Verification is one map lookup by id, one hash and one constant-time comparison (crypto_verify_32).
//
// The inline functions below are also used by `gerbangctl apikey new` (which does not link gerbang_policies).
// THREAD SAFETY: pure functions; ApiKeyIndex is immutable after building. PRECONDITION: sodium_init() ran.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gerbang::policies::authn {

inline constexpr std::size_t api_key_secret_bytes = 32;
inline constexpr std::size_t api_key_secret_chars = 43;  // unpadded base64url of 32 bytes
inline constexpr std::string_view api_key_hash_prefix = "blake2b:";
using ApiKeyDigest = std::array<std::uint8_t, 32>;

inline bool is_api_key_id(std::string_view id) noexcept {
  if (id.size() < 8 || id.size() > 32) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

// Shape only (length and alphabet); the hash comparison decides.
inline bool is_api_key_secret(std::string_view s) noexcept {
  if (s.size() != api_key_secret_chars) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

struct ApiKeyParts {
  std::string_view id;
  std::string_view secret;
};

// Splits "<id>.<secret>" and checks both shapes; nullopt when malformed.
inline std::optional<ApiKeyParts> split_api_key(std::string_view key) noexcept {
  const auto dot = key.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  ApiKeyParts p{key.substr(0, dot), key.substr(dot + 1)};
  if (!is_api_key_id(p.id) || !is_api_key_secret(p.secret)) return std::nullopt;
  return p;
}

inline ApiKeyDigest api_key_digest(std::string_view id, std::string_view secret) noexcept {
  static constexpr std::string_view kDomain{"gerbang-api-key-v1\0", 19};
  static constexpr unsigned char kZero = 0;
  crypto_generichash_state st;
  ApiKeyDigest out{};
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(kDomain.data()), kDomain.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(id.data()), id.size());
  crypto_generichash_update(&st, &kZero, 1);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
  return out;
}

// "blake2b:<64 lower-case hex>".
inline std::string api_key_hash_string(std::string_view id, std::string_view secret) {
  const auto d = api_key_digest(id, secret);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, d.data(), d.size());
  return std::string(api_key_hash_prefix) + hex;
}

// Strict parse of the stored form (lower-case hex only); nullopt when malformed.
inline std::optional<ApiKeyDigest> parse_api_key_hash(std::string_view h) noexcept {
  if (!h.starts_with(api_key_hash_prefix)) return std::nullopt;
  h.remove_prefix(api_key_hash_prefix.size());
  if (h.size() != 64) return std::nullopt;
  ApiKeyDigest d{};
  for (std::size_t i = 0; i < 32; ++i) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = h[2 * i + k];
      int x;
      if (c >= '0' && c <= '9') x = c - '0';
      else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
      else return std::nullopt;
      v = v * 16 + x;
    }
    d[i] = static_cast<std::uint8_t>(v);
  }
  return d;
}

// A fresh key: 32 random bytes for the secret, 8 for the id (16 hex characters). For gerbangctl and tests.
struct NewApiKey {
  std::string id;
  std::string secret;
  std::string key() const { return id + "." + secret; }
  std::string hash() const { return api_key_hash_string(id, secret); }
};
inline NewApiKey generate_api_key() {
  std::array<unsigned char, 8> idb{};
  std::array<unsigned char, api_key_secret_bytes> sb{};
  randombytes_buf(idb.data(), idb.size());
  randombytes_buf(sb.data(), sb.size());
  char idhex[17];
  sodium_bin2hex(idhex, sizeof idhex, idb.data(), idb.size());
  char b64[sodium_base64_ENCODED_LEN(api_key_secret_bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(b64, sizeof b64, sb.data(), sb.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(sb.data(), sb.size());
  NewApiKey k{idhex, b64};
  sodium_memzero(b64, sizeof b64);
  return k;
}

// id → (digest, consumer index), built once per generation.
class ApiKeyIndex {
 public:
  // False (with `error` set) on a malformed id or hash, or an id already added.
  bool add(std::string_view id, std::string_view hash, std::size_t consumer, std::string& error);

  enum class Outcome : std::uint8_t { ok, malformed, unknown_id, wrong_secret };
  struct Result {
    Outcome outcome = Outcome::malformed;
    std::size_t consumer = 0;  // valid when ok
    std::string_view id;       // the presented id (a view into the key), when well-formed
  };
  // Exactly one hash and one constant-time comparison for every well-formed key, known id or not.
  Result verify(std::string_view presented_key) const noexcept;

  std::size_t size() const noexcept { return by_id_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    ApiKeyDigest digest;
    std::size_t consumer;
  };
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> by_id_;
};

}  // namespace gerbang::policies::authn
