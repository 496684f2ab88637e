// Strict HTTP/1.1 head validation (RFC 9112), done on the raw bytes before anything else sees them.
//
// Request smuggling lives in the gaps between two parsers' readings of the same bytes, so the gateway accepts
// only heads with exactly one reading: one rule per function in http_codec.cpp, each naming its RFC section.
// Beast's parser then parses the already-validated head and decodes the body.
//
// CONTRACT: pure functions, noexcept, no allocation beyond the result's small vectors; thread-safe.
// Returned string_views point into the input buffer and live as long as it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace gerbang::gateway {

enum class HeadError : std::uint8_t {
  none = 0,
  bad_request_line,        // 400: not `method SP target SP HTTP/1.x`
  bad_version,             // 505 for HTTP/2+ on the wire, 400 for garbage
  uri_too_long,            // 414: request line longer than the limit
  header_too_large,        // 431: head larger than the limit
  too_many_headers,        // 431
  bad_header,              // 400: bad field name/value characters, whitespace before ':'
  obs_fold,                // 400: a field line starting with SP/HTAB (RFC 9112 §5.2)
  bare_cr_or_lf,           // 400: CR not followed by LF, or LF not preceded by CR
  nul_in_head,             // 400
  bad_content_length,      // 400: not 1*DIGIT, or too large
  duplicate_content_length,  // 400: more than one Content-Length field (even if equal)
  content_length_with_te,  // 400: both Content-Length and Transfer-Encoding
  bad_transfer_encoding,   // 400 (501 would also do): anything but a single `chunked`
  missing_host,            // 400: HTTP/1.1 without Host, or more than one Host (RFC 9112 §3.2)
  bad_status_line,         // upstream response: not `HTTP/1.x SP 3DIGIT SP reason`
};

// The stable dotted name ("http.obs_fold") used in logs, metrics and problem types.
std::string_view to_string(HeadError e) noexcept;
// The status a client gets for a request-head error (400, 414, 431, 505).
unsigned status_for(HeadError e) noexcept;

struct HeadLimits {
  std::size_t max_start_line = 8 * 1024;
  std::size_t max_head_bytes = 32 * 1024;  // whole head including the final CRLF CRLF
  std::size_t max_fields = 100;
};

enum class BodyFraming : std::uint8_t {
  none,            // requests: no body. responses: decided by status/method (caller)
  content_length,
  chunked,
  until_close,     // responses only: no CL and no TE, body runs to connection close
};

struct Field {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading/trailing OWS removed
};

struct HeadScan {
  enum class State : std::uint8_t { incomplete, complete, error } state = State::incomplete;
  HeadError error = HeadError::none;
  std::size_t head_bytes = 0;  // when complete: length of the head including the final CRLF CRLF
  // When complete:
  std::string_view method;     // requests
  std::string_view target;     // requests
  unsigned version = 11;       // 10 or 11
  unsigned status = 0;         // responses
  std::string_view reason;     // responses
  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  std::vector<Field> fields;
};

// Scans the bytes received so far. `incomplete` means "read more" (and never happens once the limits are
// exceeded: that is an error even without the end of the head). A complete scan has passed every rule.
HeadScan scan_request_head(std::string_view bytes, const HeadLimits& limits) noexcept;

// Same for an upstream response head (status line instead of request line). Framing per RFC 9112 §6.3:
// duplicate/invalid Content-Length, CL with TE, a TE other than a single `chunked` are errors (502 for us);
// no CL and no TE is `until_close`. The caller handles 1xx/204/304 and responses to HEAD (no body).
HeadScan scan_response_head(std::string_view bytes, const HeadLimits& limits) noexcept;

// The first field called `name` (ASCII case-insensitive), or null.
const Field* find_field(std::span<const Field> fields, std::string_view name) noexcept;

// RFC 9110 §5.6.1 (#rule): calls `fn` with each element of a comma-separated field value, OWS around it
// removed; empty elements are passed too (a recipient must accept and ignore them).
template <class Fn>
void for_each_list_element(std::string_view list, Fn&& fn) {
  for (;;) {
    const std::size_t comma = list.find(',');
    std::string_view element = list.substr(0, comma);
    while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) element.remove_prefix(1);
    while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) element.remove_suffix(1);
    fn(element);
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// RFC 9112 §9.3: whether the connection persists after a message with this version (10 or 11) and these
// fields: `close` in a Connection field ends it; otherwise an HTTP/1.1 connection persists, and an HTTP/1.0
// one only with `keep-alive`. nullopt when a Connection field is not a list of tokens (RFC 9110 §7.6.1:
// `Connection = #connection-option`, a token each), which the caller refuses.
std::optional<bool> connection_persists(unsigned version, std::span<const Field> fields) noexcept;

// ASCII lower case (header names and tokens are ASCII; other bytes stay as they are).
constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Case-insensitive ASCII comparison for header names and tokens.
bool iequals(std::string_view a, std::string_view b) noexcept;

// Whether `s` starts with `prefix`, ASCII case-insensitively.
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

}  // namespace gerbang::gateway
