// What passes between the gateway and the policy stages for one request (DESIGN.md §2).
//
// The view part is filled by the gateway before the stages run and points into buffers that live as long as
// the request's head; each slot below has exactly one writer, named in its comment.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policies/reason.hpp"

namespace gerbang::policies {

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // v4 in the first 4 bytes
  std::string text;                      // canonical text form
};

struct PeerCertificate {
  std::string subject;             // RFC 2253
  std::string fingerprint_sha256;  // lower-case hex
  std::vector<std::string> dns, uris, emails;
};

// Read-only view of the request head, filled by the gateway.
struct RequestView {
  std::string_view method;
  std::string_view target;  // origin-form, with query
  std::string_view path;    // without query
  std::string_view host;    // Host as received
  std::span<const HeaderField> headers;
  IpAddress peer;           // TCP peer
  IpAddress client;         // effective client: peer, or from X-Forwarded-For through trusted proxies
  std::string_view listener;
  std::size_t listener_index = 0;
  std::string_view route;   // route name
  std::size_t route_index = 0;
  const PeerCertificate* client_cert = nullptr;  // a verified client certificate, if any
  std::chrono::system_clock::time_point now;
  std::string_view request_id;  // the X-Request-Id the gateway forwards (signed in the identity assertion)
  std::uint16_t peer_port = 0;     // TCP peer port (WAF: REMOTE_PORT)
  std::string_view local_address;  // the listener's local address, text (WAF: SERVER_ADDR); "" if unknown
  std::uint16_t local_port = 0;    // (WAF: SERVER_PORT)

  // First value of a header (case-insensitive name), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  // Number of fields with that name.
  std::size_t header_count(std::string_view name) const noexcept;
};

enum class AuthMethod : std::uint8_t { none, anonymous, mtls, api_key, jwt };
std::string_view to_string(AuthMethod m) noexcept;

struct Principal {
  AuthMethod method = AuthMethod::none;
  std::string consumer;              // consumer id ("" for anonymous)
  std::vector<std::string> groups;
  std::string department;
  std::string credential_id;         // API key id, JWT subject, certificate fingerprint (never the secret)
};

namespace waf {
class RequestState;  // the WAF's per-request state (policies/waf/waf_stage.cpp)
struct RequestStateDeleter {
  void operator()(RequestState* s) const noexcept;  // defined in policies/waf/waf_stage.cpp
};
}  // namespace waf

// What the WAF saw, for the access log, the audit record and metrics. writer: waf
struct WafRecord {
  std::string_view mode;           // "" (no WAF on the route), "detect" or "block"
  int anomaly_score = -1;          // CRS inbound anomaly score after the request phases; -1 = not evaluated
  bool intervened = false;         // the engine asked to block (in detect mode: it would have blocked)
  bool body_truncated = false;     // the body went past the inspection limit: the rest was forwarded uninspected
  std::string messages;            // "942100 SQL Injection Attack Detected via libinjection; 949110 ..." (bounded)
};

struct RequestContext {
  RequestView request;

  // ---- slots, each with one writer ----
  Principal principal;               // writer: authn
  std::string upstream_headers;      // writer: authn (identity headers for the upstream, "Name: v\r\n" lines)
  std::string response_headers;      // writer: ratelimit (RateLimit/RateLimit-Policy on success)
  Reason decision = Reason::none;    // writer: the gateway (first denial)
  std::string decided_by;            // writer: the gateway (stage name that denied)
  std::vector<std::uint32_t> waf_rule_ids;  // writer: waf
  WafRecord waf;                     // writer: waf
  // writer: waf. The engine transaction between the head, body and response hooks (policies/waf/waf_stage.hpp);
  // released by waf::finish_request or reset().
  std::unique_ptr<waf::RequestState, waf::RequestStateDeleter> waf_state;
  void* worker_slot = nullptr;       // per-worker state the gateway hands to stages (see ratelimit)
  // writer: the stage that denies (at most one per request). Why, for the gateway's debug log line only —
  // never sent to the client (no oracle). Points at a string literal, so it costs nothing to set.
  std::string_view deny_detail;

  void reset() {
    principal = {};
    upstream_headers.clear();
    response_headers.clear();
    decision = Reason::none;
    decided_by.clear();
    waf_rule_ids.clear();
    waf = {};
    waf_state.reset();
    deny_detail = {};
  }
};

}  // namespace gerbang::policies
