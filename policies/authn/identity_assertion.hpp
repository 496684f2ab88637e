// The identity assertion the gateway forwards to upstreams, and its optional Ed25519 signature.
//
// Headers (all gateway-owned; the gateway strips any client-sent copy of X-Gerbang-*):
//   X-Gerbang-Consumer, X-Gerbang-Groups (comma list), X-Gerbang-Department, X-Gerbang-Auth-Method,
//   X-Gerbang-Client-Cert-SHA256 (mTLS only), and, when identity.signing_key is set,
//   X-Gerbang-Identity-Signature: t=<unix seconds>; ed25519=<standard base64 of the 64-byte signature>
//
// The signature covers the canonical string below (docs/identity-assertion.md): ten lines, each ending in
// "\n", fields empty when absent. No field can contain "\n" (config names are validated, request method,
// target and header values cannot hold line breaks), so the encoding is unambiguous.
//
//   gerbang-identity-v1
//   <consumer>
//   <groups, comma-joined, in the order of the X-Gerbang-Groups header>
//   <department>
//   <auth method: mtls | api_key | jwt | anonymous>
//   <client certificate SHA-256, lower-case hex, or empty>
//   <request id (X-Request-Id as forwarded)>
//   <time, unix seconds, decimal>
//   <method>
//   <request target as received by the gateway (before strip_prefix), with query>
//
// Inline so that `gerbangctl identity verify` can use it without linking gerbang_policies.
// THREAD SAFETY: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gerbang::policies::authn {

inline constexpr std::string_view identity_header_consumer = "X-Gerbang-Consumer";
inline constexpr std::string_view identity_header_groups = "X-Gerbang-Groups";
inline constexpr std::string_view identity_header_department = "X-Gerbang-Department";
inline constexpr std::string_view identity_header_auth_method = "X-Gerbang-Auth-Method";
inline constexpr std::string_view identity_header_cert = "X-Gerbang-Client-Cert-SHA256";
inline constexpr std::string_view identity_header_signature = "X-Gerbang-Identity-Signature";
inline constexpr std::string_view identity_header_request_id = "X-Request-Id";

struct IdentityFields {
  std::string_view consumer;
  std::string_view groups;       // comma-joined
  std::string_view department;
  std::string_view auth_method;
  std::string_view cert_sha256;
  std::string_view request_id;
  std::int64_t time = 0;         // unix seconds
  std::string_view method;
  std::string_view target;
};

inline std::string identity_canonical_string(const IdentityFields& f) {
  std::string s;
  s.reserve(64 + f.consumer.size() + f.groups.size() + f.department.size() + f.cert_sha256.size() +
            f.request_id.size() + f.method.size() + f.target.size());
  auto line = [&s](std::string_view v) {
    s.append(v);
    s += '\n';
  };
  line("gerbang-identity-v1");
  line(f.consumer);
  line(f.groups);
  line(f.department);
  line(f.auth_method);
  line(f.cert_sha256);
  line(f.request_id);
  line(std::to_string(f.time));
  line(f.method);
  line(f.target);
  return s;
}

struct ParsedSignatureHeader {
  std::int64_t time = 0;
  std::string signature_b64;  // standard base64, 88 characters
};

// Parses "t=<digits>; ed25519=<base64>" strictly (exactly these two parameters, in this order).
inline std::optional<ParsedSignatureHeader> parse_identity_signature(std::string_view v) {
  ParsedSignatureHeader out;
  if (!v.starts_with("t=")) return std::nullopt;
  v.remove_prefix(2);
  const auto semi = v.find("; ed25519=");
  if (semi == std::string_view::npos || semi == 0 || semi > 19) return std::nullopt;
  std::int64_t t = 0;
  for (char c : v.substr(0, semi)) {
    if (c < '0' || c > '9') return std::nullopt;
    t = t * 10 + (c - '0');
  }
  out.time = t;
  out.signature_b64 = std::string(v.substr(semi + 10));
  if (out.signature_b64.size() != 88) return std::nullopt;
  return out;
}

}  // namespace gerbang::policies::authn
