#include "gateway/problem.hpp"

#include <fmt/format.h>

namespace gerbang::gateway {

void append_json_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

void render_problem(std::string& out, policies::Reason reason, std::string_view request_id,
                    const LocalReplyOptions& options) {
  const auto& ri = policies::info(reason);
  // The body names only the stable reason and a generic title: never internal details (DESIGN.md §3).
  std::string body;
  body.reserve(160 + request_id.size());
  body += R"({"type":"urn:gerbang:problem:)";
  body += ri.name;
  body += R"(","title":")";
  body += ri.title;
  body += R"(","status":)";
  body += std::to_string(ri.status);
  body += R"(,"request_id":")";
  append_json_escaped(body, request_id);
  body += "\"}\n";

  fmt::format_to(std::back_inserter(out),
                 "HTTP/1.1 {} {}\r\n"
                 "Content-Type: application/problem+json\r\n"
                 "Content-Length: {}\r\n"
                 "Cache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "X-Request-Id: {}\r\n",
                 ri.status, ri.title, body.size(), request_id);
  if (!options.hsts.empty()) {
    fmt::format_to(std::back_inserter(out), "Strict-Transport-Security: {}\r\n", options.hsts);
  }
  out += options.extra_headers;
  if (options.close) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (!options.head_only) {
    out += body;
  }
}

}  // namespace gerbang::gateway
