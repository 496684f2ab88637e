// Why a request was answered the way it was: one stable dotted name per outcome.
//
// The name drives the problem+json `type`, the access log, metrics labels and (later) the audit record, so
// values are only ever appended and names never change once released.
// Thread-safety: constant tables, safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace gerbang::policies {

enum class Reason : std::uint8_t {
  none = 0,               // forwarded normally
  // Framing / parsing (gateway/http_codec)
  http_bad_request_line,
  http_bad_version,
  http_uri_too_long,
  http_header_too_large,
  http_too_many_headers,
  http_bad_header,
  http_obs_fold,
  http_bare_cr_or_lf,
  http_nul_in_head,
  http_bad_content_length,
  http_duplicate_content_length,
  http_content_length_with_te,
  http_bad_transfer_encoding,
  http_missing_host,
  http_bad_chunk,           // invalid chunked body
  http_bad_path,            // dot-segments or other non-normalised paths
  http_expectation_failed,  // Expect other than 100-continue
  http_request_timeout,     // head not received in time
  http_body_timeout,        // body too slow (idle or under the minimum rate)
  // Routing and limits
  route_not_found,
  route_method_not_allowed,
  limits_body_too_large,
  // Upstream
  upstream_connect_failed,
  upstream_timeout,
  upstream_bad_response,
  upstream_reset,
  upstream_overloaded,
  // Gateway
  gateway_shutting_down,
  gateway_internal_error,
  // Policies (issue #3)
  ipfilter_denied,               // client address not allowed on the listener or route
  authn_missing_credential,      // the route needs a credential and none was presented
  authn_invalid_credential,      // a credential was presented and did not verify (no detail to the client)
  authz_denied,                  // authenticated, but no allow rule of the route matches
  ratelimit_exceeded,            // over a rate limit of the route
  ratelimit_backend_unavailable, // shared counter store unreachable and on_failure: deny
  upstream_concurrency_limit,    // no concurrency slot for the upstream within queue_timeout
  audit_unavailable,             // the exchange could not be recorded and audit.on_failure is reject
  // WAF (issue #5)
  waf_blocked,                   // the WAF (block mode) intervened: 403, or the connection is closed (status 444)
  waf_engine_error,              // the WAF engine failed on this request: fail closed
  waf_body_over_limit,           // request body past waf.body_inspection_limit with over_limit: reject
  waf_redirect,                  // the WAF intervened with a redirect: 302 with Location
  count_  // keep last
};

inline constexpr std::size_t kReasonCount = static_cast<std::size_t>(Reason::count_);

struct ReasonInfo {
  std::string_view name;   // "http.obs_fold"
  unsigned status;         // the HTTP status a client gets
  std::string_view title;  // short, generic, safe to show to anyone
};

const ReasonInfo& info(Reason r) noexcept;
inline std::string_view to_string(Reason r) noexcept { return info(r).name; }

}  // namespace gerbang::policies
