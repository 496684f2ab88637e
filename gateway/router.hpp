// Route table: host + longest path prefix (+ method) → route index. Built once per configuration generation;
// lookups only read. Prefixes match whole segments: "/api" matches "/api", "/api/x" and "/api?q", never
// "/apix" (a prefix ending in '/' matches anything under it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"

namespace gerbang::gateway {

struct RouteMatchResult {
  enum class Kind { matched, not_found, method_not_allowed } kind = Kind::not_found;
  std::size_t route = 0;  // when matched
  std::string allow;      // when method_not_allowed: "GET, POST"
};

class Router {
 public:
  explicit Router(const std::vector<config::RouteConfig>& routes);
  // host: Host header value (port and case are handled here); path: request target path (query allowed).
  RouteMatchResult match(std::string_view host, std::string_view path, std::string_view method) const;

 private:
  struct Entry {
    std::size_t index;
    std::vector<std::string> hosts;  // lower-case
    std::string prefix;
    std::vector<std::string> methods;
  };
  std::vector<Entry> entries_;  // sorted by prefix length, longest first
};

// Hostname without port, lower-cased ("Api.Example:8443" → "api.example", "[::1]:8443" → "[::1]").
std::string normalize_host(std::string_view host);

// True if the path (before '?') contains a "." or ".." segment, literally or percent-encoded (%2e), or an
// encoded slash (%2f, %5c): prefix routing on such paths could be bypassed by an upstream that normalises.
bool has_unsafe_path_segments(std::string_view target);

// The target with `prefix` removed (whole segments), always starting with '/'.
std::string strip_route_prefix(std::string_view target, std::string_view prefix);

}  // namespace gerbang::gateway
