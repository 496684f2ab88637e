// JWT bearer tokens (RFC 7519) in JWS compact form (RFC 7515), verified against per-issuer JWKS files.
//
// Accepted algorithms: EdDSA (Ed25519), ES256 (P-256), ES384 (P-384), RS256, PS256 (RSASSA-PSS, salt length =
// hash length). Every token must: fit in max_token_bytes; have exactly three non-empty strict-base64url parts
// (no padding, no stray characters, no non-zero trailing bits); carry a JSON-object header with `alg` and
// `kid` and no `crit`; have an `alg` that the issuer allows and that matches the key's type (`none`, the HS*
// family and RSA-keys-with-ES256 style confusion are all refused); a known `kid`; a valid signature; `iss`
// equal to a configured issuer; `exp` (required), `nbf` and `iat` within the leeway; exp - iat (or exp - now
// without iat) at most max_lifetime; `aud` (string or array) naming an accepted audience; a non-empty `sub`.
//
// Keys are loaded once at build time; nothing is ever fetched (jku/x5u/jwk header members are ignored).
// THREAD SAFETY: a built JwtAuthenticator is safe to share (its only mutable part, the verified-token cache,
// is sharded behind mutexes); verify() allocates a little but
// never throws except std::bad_alloc. OpenSSL types stay in jwt.cpp (STYLE.md §2.14).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy_config.hpp"

namespace gerbang::policies::authn {

// Strict unpadded base64url (RFC 7515 §2); nullopt on any deviation.
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view bytes);

class JwtAuthenticator {
 public:
  struct Verified {
    std::size_t issuer = 0;            // index into the issuers given to create()
    std::string subject;
    std::vector<std::string> groups;   // from the issuer's groups_claim (absent = empty)
  };

  // Loads every issuer's JWKS file. Null with errors ("auth.jwt_issuers[i] (name): ...") on failure.
  static std::unique_ptr<JwtAuthenticator> create(const std::vector<JwtIssuerConfig>& issuers,
                                                  std::vector<std::string>& errors);
  ~JwtAuthenticator();
  JwtAuthenticator(const JwtAuthenticator&) = delete;
  JwtAuthenticator& operator=(const JwtAuthenticator&) = delete;

  // nullopt when the token is not acceptable; `why` then names the failed check (for a debug log line only).
  // A token that verified before is answered from a bounded cache while its claims' time window holds.
  std::optional<Verified> verify(std::string_view token, std::chrono::system_clock::time_point now,
                                 std::string_view& why) const;

  std::size_t cached_tokens() const;  // verified tokens held (at most 4096)

  const JwtIssuerConfig& issuer(std::size_t i) const;
  std::size_t issuer_count() const noexcept;

 private:
  struct Impl;
  explicit JwtAuthenticator(std::unique_ptr<Impl> impl);
  // Every check; [from, until] (Unix seconds) is where the time-dependent ones keep passing.
  std::optional<Verified> verify_uncached(std::string_view token, std::chrono::system_clock::time_point now,
                                          std::string_view& why, std::int64_t& from, std::int64_t& until) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::policies::authn
