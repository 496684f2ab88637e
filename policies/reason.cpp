#include "policies/reason.hpp"

#include <array>

namespace gerbang::policies {
namespace {

// One row per Reason, in enum order (checked by the static_assert below and by unit tests).
constexpr std::array<ReasonInfo, kReasonCount> kTable{{
    {"none", 200, "OK"},
    {"http.bad_request_line", 400, "Bad Request"},
    {"http.bad_version", 505, "HTTP Version Not Supported"},
    {"http.uri_too_long", 414, "URI Too Long"},
    {"http.header_too_large", 431, "Request Header Fields Too Large"},
    {"http.too_many_headers", 431, "Request Header Fields Too Large"},
    {"http.bad_header", 400, "Bad Request"},
    {"http.obs_fold", 400, "Bad Request"},
    {"http.bare_cr_or_lf", 400, "Bad Request"},
    {"http.nul_in_head", 400, "Bad Request"},
    {"http.bad_content_length", 400, "Bad Request"},
    {"http.duplicate_content_length", 400, "Bad Request"},
    {"http.content_length_with_te", 400, "Bad Request"},
    {"http.bad_transfer_encoding", 400, "Bad Request"},
    {"http.missing_host", 400, "Bad Request"},
    {"http.bad_chunk", 400, "Bad Request"},
    {"http.bad_path", 400, "Bad Request"},
    {"http.expectation_failed", 417, "Expectation Failed"},
    {"http.request_timeout", 408, "Request Timeout"},
    {"http.body_timeout", 408, "Request Timeout"},
    {"route.not_found", 404, "Not Found"},
    {"route.method_not_allowed", 405, "Method Not Allowed"},
    {"limits.body_too_large", 413, "Content Too Large"},
    {"upstream.connect_failed", 502, "Bad Gateway"},
    {"upstream.timeout", 504, "Gateway Timeout"},
    {"upstream.bad_response", 502, "Bad Gateway"},
    {"upstream.reset", 502, "Bad Gateway"},
    {"upstream.overloaded", 503, "Service Unavailable"},
    {"gateway.shutting_down", 503, "Service Unavailable"},
    {"gateway.internal_error", 500, "Internal Server Error"},
    {"ipfilter.denied", 403, "Forbidden"},
    {"authn.missing_credential", 401, "Unauthorized"},
    {"authn.invalid_credential", 401, "Unauthorized"},
    {"authz.denied", 403, "Forbidden"},
    {"ratelimit.exceeded", 429, "Too Many Requests"},
    {"ratelimit.backend_unavailable", 503, "Service Unavailable"},
    {"upstream.concurrency_limit", 503, "Service Unavailable"},
    {"audit.unavailable", 503, "Service Unavailable"},
    {"waf.blocked", 403, "Forbidden"},
    {"waf.engine_error", 500, "Internal Server Error"},
    {"waf.body_over_limit", 413, "Content Too Large"},
    {"waf.redirect", 302, "Found"},
}};

}  // namespace

const ReasonInfo& info(Reason r) noexcept {
  auto i = static_cast<std::size_t>(r);
  return i < kTable.size() ? kTable[i] : kTable[static_cast<std::size_t>(Reason::gateway_internal_error)];
}

}  // namespace gerbang::policies
