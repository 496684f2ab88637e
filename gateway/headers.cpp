#include "gateway/headers.hpp"

#include <array>

#include <fmt/format.h>

namespace gerbang::gateway {

namespace http = boost::beast::http;

namespace {

// RFC 9110 §7.6.1 hop-by-hop fields, plus the ones that carry framing (re-derived by us) and Expect (the
// gateway answers 100-continue itself).
constexpr std::array<std::string_view, 12> kHopByHop{
    "connection",  "keep-alive", "proxy-connection", "te",             "trailer",        "transfer-encoding",
    "upgrade",     "http2-settings", "content-length", "expect", "proxy-authorization", "proxy-authenticate"};

// Fields that claim to describe the client or the path to it; trusted only from configured proxies.
constexpr std::array<std::string_view, 10> kForwarding{
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded",
    "x-real-ip",       "x-client-ip",       "true-client-ip",   "x-cluster-client-ip", "x-original-forwarded-for"};

// Response fields that advertise the stack behind us.
constexpr std::array<std::string_view, 4> kBanners{"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"};

bool in(std::string_view name, auto const& list) {
  for (auto s : list) {
    if (iequals(name, s)) {
      return true;
    }
  }
  return false;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Is `name` listed in any Connection field of `fields`?
bool nominated_by_connection(const http::fields& fields, std::string_view name) {
  for (auto it = fields.find(http::field::connection); it != fields.end() && it->name() == http::field::connection;
       ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (iequals(tok, name)) {
        return true;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

bool has_connection_field(const http::fields& fields) { return fields.find(http::field::connection) != fields.end(); }

void add(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

bool valid_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

void build_upstream_request_head(std::string& out, std::string_view method, std::string_view target,
                                 const http::fields& in_fields, const ForwardInfo& fwd, BodyFraming framing,
                                 std::uint64_t content_length) {
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  const bool check_nominated = has_connection_field(in_fields);
  // Repeated X-Forwarded-For / Forwarded lines form one list (RFC 9110 §5.3), oldest hop first: join them
  // all, or the original client named on the first line would be lost.
  std::string prior_xff;
  std::string prior_forwarded;
  auto join = [](std::string& list, std::string_view v) {
    if (!v.empty()) {
      list.append(list.empty() ? "" : ", ").append(v);
    }
  };
  for (const auto& f : in_fields) {
    const std::string_view name = f.name_string();
    if (in(name, kHopByHop) || starts_with_ci(name, "proxy-") || starts_with_ci(name, "x-gerbang-") ||
        iequals(name, "x-request-id")) {
      continue;
    }
    if (!fwd.credential_field.empty() && iequals(name, fwd.credential_field)) {
      continue;  // the department never sees the caller's gateway API key
    }
    if (check_nominated && !iequals(name, "host") && nominated_by_connection(in_fields, name)) {
      continue;
    }
    if (in(name, kForwarding)) {
      if (!fwd.peer_trusted) {
        continue;
      }
      // From a trusted proxy: the chain fields are extended below, the rest pass as they are.
      if (iequals(name, "x-forwarded-for")) {
        join(prior_xff, f.value());
        continue;
      }
      if (iequals(name, "forwarded")) {
        join(prior_forwarded, f.value());
        continue;
      }
      if (iequals(name, "x-forwarded-proto") || iequals(name, "x-forwarded-host") || iequals(name, "x-real-ip")) {
        continue;  // re-derived below, from the first hop when trusted
      }
    }
    add(out, name, f.value());
  }
  // X-Forwarded-For / Forwarded: extend a trusted chain, or start a new one.
  out.append("X-Forwarded-For: ");
  if (!prior_xff.empty()) {
    out.append(prior_xff).append(", ");
  }
  out.append(fwd.client_ip).append("\r\n");
  const bool v6 = fwd.client_ip.find(':') != std::string_view::npos;
  out.append("Forwarded: ");
  if (!prior_forwarded.empty()) {
    out.append(prior_forwarded).append(", ");
  }
  out.append(v6 ? "for=\"[" : "for=").append(fwd.client_ip).append(v6 ? "]\"" : "");
  out.append(";proto=").append(fwd.proto);
  if (!fwd.host.empty()) {
    out.append(";host=\"").append(fwd.host).append("\"");
  }
  out.append("\r\n");
  // For these, a trusted proxy's value names the original client; otherwise ours does.
  auto first_hop = [&](std::string_view name, std::string_view ours) {
    if (fwd.peer_trusted) {
      if (auto it = in_fields.find(name); it != in_fields.end()) {
        return std::string_view(it->value());
      }
    }
    return ours;
  };
  add(out, "X-Forwarded-Proto", first_hop("X-Forwarded-Proto", fwd.proto));
  add(out, "X-Forwarded-Host", first_hop("X-Forwarded-Host", fwd.host));
  add(out, "X-Real-IP", first_hop("X-Real-IP", fwd.client_ip));
  add(out, "X-Request-Id", fwd.request_id);
  out.append(fwd.extra_headers);
  switch (framing) {
    case BodyFraming::content_length:
      fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n", content_length);
      break;
    case BodyFraming::chunked:
      out.append("Transfer-Encoding: chunked\r\n");
      break;
    case BodyFraming::none:
    case BodyFraming::until_close:
      break;
  }
  out.append("\r\n");
}

void build_client_response_head(std::string& out, const http::fields& in_fields, const ResponseHeadInfo& info) {
  fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\n", info.status, info.reason);
  const bool check_nominated = has_connection_field(in_fields);
  for (const auto& f : in_fields) {
    const std::string_view name = f.name_string();
    if (iequals(name, "content-length")) {
      if (info.keep_upstream_content_length) {
        add(out, name, f.value());
      }
      continue;
    }
    if (in(name, kHopByHop) || starts_with_ci(name, "proxy-") || in(name, kBanners) ||
        starts_with_ci(name, "x-gerbang-") || iequals(name, "x-request-id") ||
        (!info.hsts.empty() && iequals(name, "strict-transport-security"))) {
      continue;
    }
    if (check_nominated && nominated_by_connection(in_fields, name)) {
      continue;
    }
    add(out, name, f.value());
  }
  add(out, "X-Request-Id", info.request_id);
  if (!info.hsts.empty()) {
    add(out, "Strict-Transport-Security", info.hsts);
  }
  out.append(info.extra_headers);
  switch (info.framing) {
    case BodyFraming::content_length:
      fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n", info.content_length);
      break;
    case BodyFraming::chunked:
      out.append("Transfer-Encoding: chunked\r\n");
      break;
    case BodyFraming::none:
    case BodyFraming::until_close:
      break;
  }
  if (info.close) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n");
}

}  // namespace gerbang::gateway
