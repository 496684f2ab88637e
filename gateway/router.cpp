#include "gateway/router.hpp"

#include <algorithm>

namespace gerbang::gateway {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool host_matches(const std::vector<std::string>& hosts, std::string_view host) {
  if (hosts.empty()) {
    return true;
  }
  for (const auto& h : hosts) {
    if (h == host) {
      return true;
    }
    // "*.kota.go.id" matches "a.kota.go.id" (one or more labels), not "kota.go.id".
    if (h.size() > 2 && h[0] == '*' && h[1] == '.' && host.size() > h.size() - 1 &&
        host.substr(host.size() - (h.size() - 1)) == std::string_view(h).substr(1)) {
      return true;
    }
  }
  return false;
}

bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (path.substr(0, prefix.size()) != prefix) {
    return false;
  }
  if (path.size() == prefix.size() || prefix.back() == '/') {
    return true;
  }
  const char next = path[prefix.size()];
  return next == '/' || next == '?';
}

}  // namespace

std::string normalize_host(std::string_view host) {
  std::string out;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  out.reserve(host.size());
  for (char c : host) {
    out += lower(c);
  }
  if (!out.empty() && out.back() == '.') {
    out.pop_back();  // "example.com." names the same host
  }
  return out;
}

Router::Router(const std::vector<config::RouteConfig>& routes) {
  for (std::size_t i = 0; i < routes.size(); ++i) {
    Entry e{i, {}, routes[i].match.path_prefix, routes[i].match.methods};
    for (const auto& h : routes[i].match.hosts) {
      e.hosts.push_back(normalize_host(h));
    }
    entries_.push_back(std::move(e));
  }
  // Longest prefix first; among equal prefixes, configuration order (stable sort).
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.prefix.size() > b.prefix.size(); });
}

RouteMatchResult Router::match(std::string_view host_header, std::string_view path, std::string_view method) const {
  const std::string host = normalize_host(host_header);
  RouteMatchResult result;
  std::size_t matched_prefix_len = 0;
  bool prefix_seen = false;
  std::vector<std::string_view> allowed;  // methods already in result.allow
  for (const auto& e : entries_) {
    if (prefix_seen && e.prefix.size() < matched_prefix_len) {
      break;  // only routes with the longest matching prefix compete
    }
    if (!host_matches(e.hosts, host) || !prefix_matches(e.prefix, path)) {
      continue;
    }
    prefix_seen = true;
    matched_prefix_len = e.prefix.size();
    if (e.methods.empty() || std::find(e.methods.begin(), e.methods.end(), method) != e.methods.end()) {
      result.kind = RouteMatchResult::Kind::matched;
      result.route = e.index;
      return result;
    }
    for (const auto& m : e.methods) {
      // Whole-token comparison: a substring search would drop "PATCH" once "PROPPATCH" is listed.
      if (std::find(allowed.begin(), allowed.end(), m) == allowed.end()) {
        allowed.push_back(m);
        result.allow += result.allow.empty() ? m : ", " + m;
      }
    }
  }
  result.kind = prefix_seen ? RouteMatchResult::Kind::method_not_allowed : RouteMatchResult::Kind::not_found;
  return result;
}

bool has_unsafe_path_segments(std::string_view target) {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  // Decode only what matters here: %2e ('.'), %2f ('/'), %5c ('\').
  std::string decoded;
  decoded.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size()) {
      const char a = lower(path[i + 1]);
      const char b = lower(path[i + 2]);
      if (a == '2' && b == 'e') { decoded += '.'; i += 2; continue; }
      if ((a == '2' && b == 'f') || (a == '5' && b == 'c')) { return true; }
    }
    if (path[i] == '\\') {
      return true;
    }
    decoded += path[i];
  }
  std::size_t start = 0;
  while (start <= decoded.size()) {
    auto end = decoded.find('/', start);
    if (end == std::string::npos) {
      end = decoded.size();
    }
    const std::string_view seg(decoded.data() + start, end - start);
    if (start > 0 && (seg == "." || seg == "..")) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

std::string strip_route_prefix(std::string_view target, std::string_view prefix) {
  std::string_view rest = target.substr(std::min(prefix.size(), target.size()));
  if (!prefix.empty() && prefix.back() == '/') {
    // "/api/" stripped from "/api/x" leaves "x": keep the separator.
    return "/" + std::string(rest);
  }
  if (rest.empty() || rest.front() == '?') {
    return "/" + std::string(rest);
  }
  return std::string(rest);
}

}  // namespace gerbang::gateway
