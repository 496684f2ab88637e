// Validated configuration of the policy stages (issue #3). Lives in policies/ so the stages need nothing
// from gateway/; gateway/config/config.hpp embeds these structs and the loader fills them.
//
// CONTRACT as config.hpp: every field carries its default and its constraint; values here have passed
// validation (ranges, references between consumers/routes/issuers, file readability, key-file modes).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gerbang::policies {

// A CIDR block (IPv4 or IPv6), normalised. Same layout as config::Cidr.
struct CidrBlock {
  std::string text;
  bool v6 = false;
  std::array<std::uint8_t, 16> addr{};
  std::uint8_t prefix = 0;
};

struct IpFilterConfig {
  std::vector<CidrBlock> allow;  // empty = everyone not denied
  std::vector<CidrBlock> deny;   // deny wins over allow
  bool empty() const { return allow.empty() && deny.empty(); }
};

// ---- identity ----

struct MtlsMatch {                 // a verified client certificate maps to a consumer if ALL given fields match
  std::string subject;             // exact RFC 2253 subject, e.g. "CN=dinkes-app,OU=dinkes,O=Kota"
  std::string san_dns;
  std::string san_uri;             // e.g. "spiffe://kota.go.id/dinkes/app"
  std::string san_email;
  std::string fingerprint_sha256;  // lower-case hex, 64 chars
};

struct ApiKeyCredential {
  std::string id;                  // public key id: the part of the key before the '.', [a-z0-9]{8..32}
  std::string hash;                // "$argon2id$..." (crypto_pwhash_str) or "blake2b:<hex>" keyed hash — see apikey docs
};

struct JwtMatch {
  std::string issuer;              // names a jwt.issuers[] entry
  std::string subject;             // exact `sub`
};

struct ConsumerConfig {
  std::string id;                  // required, unique, [a-z0-9_.-]{1,64}
  std::vector<std::string> groups;
  std::string department;          // free text, forwarded in identity headers
  std::vector<MtlsMatch> mtls;
  std::vector<ApiKeyCredential> api_keys;
  std::vector<JwtMatch> jwt;
};

struct JwtIssuerConfig {
  std::string name;                // required, unique
  std::string issuer;              // expected `iss`
  std::vector<std::string> audiences;  // accepted `aud` values (at least one)
  std::string jwks_file;           // JWKS (RFC 7517) with kid per key: OKP Ed25519, EC P-256/P-384, RSA
  std::vector<std::string> algorithms{"EdDSA", "ES256", "ES384", "RS256", "PS256"};  // allowed `alg`s
  std::chrono::seconds leeway{30}; // 0..300 for exp/nbf/iat
  std::chrono::seconds max_lifetime{24 * 3600};  // exp - iat at most this
  std::uint32_t max_token_bytes = 8192;          // 256..65536
  std::string groups_claim = "groups";           // array of strings mapped to Principal::groups
  // A token whose `sub` matches no consumer is accepted as consumer "jwt:<sub>" only if this is true.
  bool allow_unknown_subjects = false;
};

struct AuthConfig {
  std::string api_key_header = "X-API-Key";      // where API keys are accepted
  std::vector<JwtIssuerConfig> jwt_issuers;
};

// Identity assertion forwarded to upstreams in gateway-owned headers (X-Gerbang-*), optionally signed.
struct IdentityConfig {
  std::string header_prefix = "X-Gerbang-";      // fixed namespace; client copies are always stripped
  std::string signing_key_file;                  // Ed25519 key (gerbangctl keys generate); "" = unsigned
};

// ---- per route ----

struct RouteAuthConfig {
  std::vector<std::string> methods;  // subset of mtls, api_key, jwt, in the order tried; empty + anonymous=true: open
  bool anonymous = false;            // true: requests without credentials pass as anonymous
  bool api_key_in_query = false;     // opt in to ?api_key=... (off: never read keys from the query)
};

struct AllowRule {
  std::vector<std::string> consumers;  // consumer ids
  std::vector<std::string> groups;     // any of these groups
  std::vector<std::string> methods;    // empty = all methods of the route
};

enum class RateKeyPart : std::uint8_t { consumer, client_ip, route };

struct RateLimitRule {
  std::string name;                     // for headers/metrics; default "<rate>/<period>"
  std::vector<RateKeyPart> key{RateKeyPart::consumer};  // combination
  std::uint64_t requests = 0;           // per `period`, >= 1
  std::chrono::milliseconds period{1000};  // "10/s", "1000/h" → requests + period
  std::uint64_t burst = 0;              // bucket size; 0 = requests
};

struct RoutePolicyConfig {
  RouteAuthConfig auth;                 // default: no auth block = anonymous allowed (issue #2 behaviour)
  bool has_auth = false;                // an `auth:` block was given: authentication required unless anonymous
  std::vector<AllowRule> allow;         // empty with has_auth = any authenticated consumer? No: default deny.
  std::vector<RateLimitRule> rate_limits;
  IpFilterConfig ip;
};

// ---- rate-limit backend and concurrency ----

struct RateLimitBackendConfig {
  enum class Backend : std::uint8_t { local, redis } backend = Backend::local;
  std::string redis_address = "127.0.0.1:6379";
  std::chrono::milliseconds redis_timeout{50};   // per decision round trip
  enum class OnFailure : std::uint8_t { local, deny } on_failure = OnFailure::local;  // fall back or fail closed
  std::uint32_t max_keys = 100000;               // per worker, LRU-evicted (memory bound)
};

}  // namespace gerbang::policies
