// Audit records and their one canonical byte encoding (docs/audit-format.md §2). The encoded bytes are
// the Merkle leaf: they are stored as they are and never re-serialised (DESIGN.md §4.2).
//
// THREAD SAFETY: pure functions over values.
// ERRORS: decode() returns nullopt for anything that is not exactly the canonical encoding of some record,
// so encode(*decode(b)) == b whenever decode(b) succeeds. encode() never fails: invalid UTF-8 in a field
// becomes U+FFFD (so decode(encode(r)) may differ from r only in such bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gerbang::audit {

enum class RecordKind : std::uint8_t {
  exchange_open,   // before the request reaches the upstream: who, what, decision
  exchange_close,  // after the response: status, sizes, digests, duration; `opens` = its open's leaf index
  exchange,        // a rejected exchange (never forwarded): one record
  recovery,        // the log trimmed a torn tail after a crash; detail says what
  key_rotation,    // the log signs with a new key from here on; detail = the new verifier key
  config_change,   // who reloaded what
  halt,            // the gateway stops recording (detail says why)
  start,           // the log was opened; detail = verifier key of the signing key in use
};

// "exchange_open", ... (the JSON value of "kind"); nullopt for an unknown name.
const char* to_string(RecordKind k) noexcept;
std::optional<RecordKind> record_kind_from_string(std::string_view s) noexcept;

// The current encoding version (the "v" member).
inline constexpr unsigned record_format_version = 1;

struct Record {
  RecordKind kind = RecordKind::exchange;
  std::int64_t time_ms = 0;  // unix time, milliseconds
  std::string request_id, listener, client, tls_version, tls_cipher, client_cert_sha256, consumer, auth_method,
      route, upstream, method,
      path,      // query kept or dropped per route
      decision,  // "forward" | "deny" | "error"
      reason,    // dotted, e.g. "authz.no_route"
      waf_rule_ids,  // comma list
      request_body_sha256, response_body_sha256,
      detail;  // free text for recovery/config/halt/start/key_rotation
  unsigned status = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0, duration_us = 0;
  std::optional<std::uint64_t> opens;  // exchange_close: leaf index of its exchange_open

  friend bool operator==(const Record&, const Record&) = default;
};

// Canonical JSON: members in the fixed order of docs/audit-format.md; "v", "kind" and "time_ms" always;
// a string member only when non-empty, a number member only when non-zero, "opens" only when set.
std::string encode(const Record& r);
// Strict inverse of encode().
std::optional<Record> decode(std::string_view bytes);

}  // namespace gerbang::audit
