// Header hygiene in both directions (RFC 9110 §7.6.1, RFC 7239): hop-by-hop fields and those nominated by
// Connection are dropped; framing fields are re-derived by the gateway, never copied; forwarding fields are
// kept only from trusted proxies; the gateway's own X-Gerbang-* namespace is never accepted from outside.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gateway/http_codec.hpp"

namespace gerbang::gateway {

struct ForwardInfo {
  std::string_view client_ip;   // peer address of the downstream connection
  bool peer_trusted = false;    // peer is in trusted_proxies
  std::string_view host;        // Host as received
  std::string_view proto = "https";
  std::string_view request_id;
  std::string_view extra_headers;  // pre-formatted "Name: value\r\n" lines from the policy stages (identity)
  std::string_view credential_field;  // a field holding a gateway credential (the API key header): not forwarded
};

// Appends the head sent to the upstream: request line (`method target HTTP/1.1`), sanitised fields,
// forwarding fields, X-Request-Id, and framing derived from what the gateway parsed. `in` are the client's
// fields as scan_request_head split them, in their order.
void build_upstream_request_head(std::string& out, std::string_view method, std::string_view target,
                                 std::span<const Field> in, const ForwardInfo& fwd, BodyFraming framing,
                                 std::uint64_t content_length);

struct ResponseHeadInfo {
  unsigned status = 200;
  std::string_view reason;
  std::string_view request_id;
  std::string_view hsts;        // "" = none
  BodyFraming framing = BodyFraming::none;  // to the client: none / content_length / chunked / until_close
  std::uint64_t content_length = 0;
  bool keep_upstream_content_length = false;  // HEAD/304: forward the upstream's CL as information
  bool close = false;           // add Connection: close
  std::string_view extra_headers;  // pre-formatted lines from the policy stages (RateLimit headers)
};

// Appends the head sent to the client for an upstream response; `in` are the upstream's fields as
// scan_response_head split them, in their order.
void build_client_response_head(std::string& out, std::span<const Field> in, const ResponseHeadInfo& info);

// Appends "Content-Length: N\r\n" (std::to_chars: fmt's back_inserter stages through a 256-byte buffer).
void append_content_length(std::string& out, std::uint64_t n);

// True if `id` is an acceptable incoming request id (1..128 chars of [A-Za-z0-9._:-]).
bool valid_request_id(std::string_view id) noexcept;

}  // namespace gerbang::gateway
