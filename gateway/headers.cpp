#include "gateway/headers.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <vector>

namespace gerbang::gateway {

using namespace std::string_view_literals;

namespace {

// What the hygiene rules make of a field name.
enum class Kind : std::uint8_t {
  other,
  hop_by_hop,      // RFC 9110 §7.6.1, plus Expect (the gateway answers 100-continue itself)
  content_length,  // framing: re-derived by the gateway (kept on HEAD/304 responses as information)
  forwarding,      // claims about the client or the path to it: trusted only from configured proxies
  xff,             // X-Forwarded-For: a trusted chain is extended
  forwarded,       // Forwarded (RFC 7239): the same
  first_hop,       // X-Forwarded-Proto/-Host, X-Real-IP: re-derived (a trusted proxy's value is kept)
  banner,          // response fields that advertise the stack behind us
  request_id,      // X-Request-Id: ours (an incoming one only from trusted proxies, handled elsewhere)
  hsts,            // Strict-Transport-Security: replaced when the listener sets its own
  host,
};

struct Named {
  std::string_view name;  // lower case
  Kind kind;
};

// Every name with a rule, by first letter (the index below is built from it). The prefixes `proxy-` (hop by
// hop) and `x-gerbang-` (our namespace) are matched on their own.
constexpr std::array<Named, 29> kNames{{
    {"connection", Kind::hop_by_hop},
    {"keep-alive", Kind::hop_by_hop},
    {"proxy-connection", Kind::hop_by_hop},
    {"te", Kind::hop_by_hop},
    {"trailer", Kind::hop_by_hop},
    {"transfer-encoding", Kind::hop_by_hop},
    {"upgrade", Kind::hop_by_hop},
    {"http2-settings", Kind::hop_by_hop},
    {"expect", Kind::hop_by_hop},
    {"proxy-authorization", Kind::hop_by_hop},
    {"proxy-authenticate", Kind::hop_by_hop},
    {"content-length", Kind::content_length},
    {"x-forwarded-for", Kind::xff},
    {"forwarded", Kind::forwarded},
    {"x-forwarded-proto", Kind::first_hop},
    {"x-forwarded-host", Kind::first_hop},
    {"x-real-ip", Kind::first_hop},
    {"x-forwarded-port", Kind::forwarding},
    {"x-client-ip", Kind::forwarding},
    {"true-client-ip", Kind::forwarding},
    {"x-cluster-client-ip", Kind::forwarding},
    {"x-original-forwarded-for", Kind::forwarding},
    {"server", Kind::banner},
    {"x-powered-by", Kind::banner},
    {"x-aspnet-version", Kind::banner},
    {"x-aspnetmvc-version", Kind::banner},
    {"x-request-id", Kind::request_id},
    {"strict-transport-security", Kind::hsts},
    {"host", Kind::host},
}};

// For each lower-case first letter, a bit set of the kNames rows that start with it.
constexpr std::array<std::uint32_t, 26> make_index() noexcept {
  std::array<std::uint32_t, 26> index{};
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    index[static_cast<std::size_t>(kNames[i].name[0] - 'a')] |= std::uint32_t{1} << i;
  }
  return index;
}
constexpr std::array<std::uint32_t, 26> kIndex = make_index();
static_assert(kNames.size() <= 32, "kIndex holds one bit per kNames row");

// One look at the first letter picks the few rows to compare (most fields, Content-Type, Date, ETag, match
// none and cost a table lookup). Any `proxy-*` name is hop by hop.
Kind classify(std::string_view name) noexcept {
  if (name.empty()) {
    return Kind::other;
  }
  const char first = ascii_lower(name[0]);
  if (first < 'a' || first > 'z') {
    return Kind::other;
  }
  for (std::uint32_t rows = kIndex[static_cast<std::size_t>(first - 'a')]; rows != 0; rows &= rows - 1) {
    const Named& n = kNames[static_cast<std::size_t>(__builtin_ctz(rows))];
    if (n.name.size() == name.size() && iequals(name, n.name)) {
      return n.kind;
    }
  }
  if (first == 'p' && istarts_with(name, "proxy-")) {
    return Kind::hop_by_hop;
  }
  return Kind::other;
}

bool is_gerbang_namespace(std::string_view name) { return istarts_with(name, "x-gerbang-"); }

// The field names listed by the Connection fields of a head (RFC 9110 §7.6.1), gathered once per head
// instead of once per field. Views into the head.
class ConnectionTokens {
 public:
  void add_list(std::string_view v) {
    for_each_list_element(v, [this](std::string_view tok) {
      if (!tok.empty()) {
        tokens_.push_back(tok);
      }
    });
  }
  bool contains(std::string_view name) const noexcept {
    for (const auto t : tokens_) {
      if (iequals(t, name)) {
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::string_view> tokens_;  // allocated only for a head that has a Connection field
};

ConnectionTokens connection_tokens(std::span<const Field> fields) {
  ConnectionTokens t;
  for (const auto& f : fields) {
    if (f.name.size() == 10 && iequals(f.name, "connection")) {
      t.add_list(f.value);
    }
  }
  return t;
}

void add(std::string& out, std::string_view name, std::string_view value) {
  const std::size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

}  // namespace

void append_content_length(std::string& out, std::uint64_t n) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append("Content-Length: "sv).append(digits, static_cast<std::size_t>(end - digits)).append("\r\n"sv);
}

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
                                 std::span<const Field> in_fields, const ForwardInfo& fwd, BodyFraming framing,
                                 std::uint64_t content_length) {
  out.append(method).append(" "sv).append(target).append(" HTTP/1.1\r\n"sv);
  const ConnectionTokens nominated = connection_tokens(in_fields);
  // Repeated X-Forwarded-For / Forwarded lines form one list (RFC 9110 §5.3), oldest hop first: join them
  // all, or the original client named on the first line would be lost.
  std::string prior_xff;
  std::string prior_forwarded;
  auto join = [](std::string& list, std::string_view v) {
    if (!v.empty()) {
      list.append(list.empty() ? ""sv : ", "sv).append(v);
    }
  };
  for (const auto& f : in_fields) {
    const std::string_view name = f.name;
    const Kind kind = classify(name);
    if (kind == Kind::hop_by_hop || kind == Kind::content_length || kind == Kind::request_id ||
        is_gerbang_namespace(name)) {
      continue;
    }
    if (!fwd.credential_field.empty() && iequals(name, fwd.credential_field)) {
      continue;  // the department never sees the caller's gateway API key
    }
    if (kind != Kind::host && nominated.contains(name)) {
      continue;
    }
    switch (kind) {
      case Kind::xff:
      case Kind::forwarded:
      case Kind::first_hop:
      case Kind::forwarding:
        if (!fwd.peer_trusted) {
          continue;
        }
        // From a trusted proxy: the chain fields are extended below, the rest pass as they are.
        if (kind == Kind::xff) {
          join(prior_xff, f.value);
          continue;
        }
        if (kind == Kind::forwarded) {
          join(prior_forwarded, f.value);
          continue;
        }
        if (kind == Kind::first_hop) {
          continue;  // re-derived below, from the first hop when trusted
        }
        break;
      default:
        break;
    }
    add(out, name, f.value);
  }
  // X-Forwarded-For / Forwarded: extend a trusted chain, or start a new one.
  out.append("X-Forwarded-For: "sv);
  if (!prior_xff.empty()) {
    out.append(prior_xff).append(", "sv);
  }
  out.append(fwd.client_ip).append("\r\n"sv);
  const bool v6 = fwd.client_ip.find(':') != std::string_view::npos;
  out.append("Forwarded: "sv);
  if (!prior_forwarded.empty()) {
    out.append(prior_forwarded).append(", "sv);
  }
  out.append(v6 ? "for=\"["sv : "for="sv).append(fwd.client_ip).append(v6 ? "]\""sv : ""sv);
  out.append(";proto="sv).append(fwd.proto);
  if (!fwd.host.empty()) {
    out.append(";host=\""sv).append(fwd.host).append("\""sv);
  }
  out.append("\r\n"sv);
  // For these, a trusted proxy's value names the original client; otherwise ours does.
  auto first_hop = [&](std::string_view name, std::string_view ours) {
    if (fwd.peer_trusted) {
      if (const Field* f = find_field(in_fields, name)) {
        return f->value;  // the first, as a proxy that set it wrote it
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
      append_content_length(out, content_length);
      break;
    case BodyFraming::chunked:
      out.append("Transfer-Encoding: chunked\r\n"sv);
      break;
    case BodyFraming::none:
    case BodyFraming::until_close:
      break;
  }
  out.append("\r\n"sv);
}

void build_client_response_head(std::string& out, std::span<const Field> in_fields, const ResponseHeadInfo& info) {
  // The status is 100-599 (scan_response_head checked): three digits.
  const char digits[3] = {static_cast<char>('0' + info.status / 100 % 10),
                          static_cast<char>('0' + info.status / 10 % 10), static_cast<char>('0' + info.status % 10)};
  out.append("HTTP/1.1 "sv).append(digits, 3).append(" "sv).append(info.reason).append("\r\n"sv);
  const ConnectionTokens nominated = connection_tokens(in_fields);
  for (const auto& f : in_fields) {
    switch (classify(f.name)) {
      case Kind::content_length:
        if (info.keep_upstream_content_length) {
          add(out, f.name, f.value);
        }
        continue;
      case Kind::hop_by_hop:
      case Kind::banner:
      case Kind::request_id:
        continue;
      case Kind::hsts:
        if (!info.hsts.empty()) {
          continue;
        }
        break;
      default:
        break;
    }
    if (is_gerbang_namespace(f.name) || nominated.contains(f.name)) {
      continue;
    }
    add(out, f.name, f.value);
  }
  add(out, "X-Request-Id", info.request_id);
  if (!info.hsts.empty()) {
    add(out, "Strict-Transport-Security", info.hsts);
  }
  out.append(info.extra_headers);
  switch (info.framing) {
    case BodyFraming::content_length:
      append_content_length(out, info.content_length);
      break;
    case BodyFraming::chunked:
      out.append("Transfer-Encoding: chunked\r\n"sv);
      break;
    case BodyFraming::none:
    case BodyFraming::until_close:
      break;
  }
  if (info.close) {
    out.append("Connection: close\r\n"sv);
  }
  out.append("\r\n"sv);
}

}  // namespace gerbang::gateway
