// Local replies: RFC 9457 application/problem+json, built from a Reason (a stage says why, never how).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "policies/reason.hpp"

namespace gerbang::gateway {

struct LocalReplyOptions {
  bool close = false;             // add `Connection: close`
  bool head_only = false;         // response to HEAD: no body bytes
  std::string_view hsts;          // Strict-Transport-Security value, "" = none
  std::string_view extra_headers; // pre-formatted "Name: value\r\n" lines (e.g. Allow, Retry-After)
};

// The full HTTP/1.1 response (head and body) for `reason`, with the request id in X-Request-Id and in the
// body. Appends to `out` so a connection can reuse its string's capacity.
void render_problem(std::string& out, policies::Reason reason, std::string_view request_id,
                    const LocalReplyOptions& options);

// Appends `s` as JSON string contents (without quotes), escaping per RFC 8259.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace gerbang::gateway
