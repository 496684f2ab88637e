// Plain data types shared by the integration-test clients and the recording upstream.
//
// CONTRACT: value types only, no I/O and no Beast; cheap to include from any test.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gerbang::testing {

// ASCII case-insensitive comparison, the rule for HTTP field names (RFC 9110 §5.1).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

struct CaseInsensitiveLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept;
};

// Response headers: lookup ignores case; values of one name keep their order of arrival.
using HeaderMap = std::multimap<std::string, std::string, CaseInsensitiveLess>;
// Request headers as received: exact order, exact spelling, duplicates kept (smuggling tests need all three).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  unsigned status = 0;       // 0 when no status line could be parsed
  std::string reason;
  unsigned version = 0;      // 11 for HTTP/1.1, 10 for HTTP/1.0
  HeaderMap headers;
  std::string body;          // empty when ReadOptions::discard_body was set
  std::uint64_t body_bytes = 0;  // body bytes parsed, also counted when discarding
  bool complete = false;     // the whole message (head and body) was parsed
  bool keep_alive = false;   // what the message's framing says about the connection
  std::string error;         // why it is incomplete ("timeout", "end of stream", a parse error), empty if complete

  // First value of `name`, or "" if absent.
  [[nodiscard]] std::string header(std::string_view name) const;
  [[nodiscard]] bool has_header(std::string_view name) const;
  [[nodiscard]] std::size_t header_count(std::string_view name) const;
};

struct ReceivedRequest {
  std::string method;
  std::string target;
  unsigned version = 0;      // 11 for HTTP/1.1
  HeaderList headers;
  std::string body;          // the decoded body (chunked framing removed)
  bool chunked = false;      // the request used Transfer-Encoding: chunked
  bool keep_alive = false;
  std::size_t connection = 0;  // index of the upstream connection it arrived on, from 0

  [[nodiscard]] std::string header(std::string_view name) const;
  [[nodiscard]] bool has_header(std::string_view name) const;
  [[nodiscard]] std::size_t header_count(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> header_values(std::string_view name) const;
};

struct ReadOptions {
  std::chrono::milliseconds timeout{10000};
  bool head_response = false;  // the response answers a HEAD request: no body follows
  bool discard_body = false;   // count body bytes without keeping them (huge bodies)
  std::uint64_t body_limit = 64ull << 20;  // ignored when discarding
};

// "METHOD target HTTP/1.1" + headers + body. Adds "Host: <default_host>" unless `headers` has a Host, and a
// Content-Length when there is a body (or the method is POST/PUT/PATCH) unless `headers` already has
// Content-Length or Transfer-Encoding. Nothing else is added or normalised.
std::string format_http_request(std::string_view method, std::string_view target, const HeaderList& headers,
                                std::string_view body, std::string_view default_host);

// Escapes a string for use inside a JSON string literal (bytes >= 0x80 become \u00XX: "JSON-ish").
std::string json_escape(std::string_view s);

}  // namespace gerbang::testing
