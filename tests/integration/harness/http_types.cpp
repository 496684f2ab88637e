#include "harness/http_types.hpp"

#include <algorithm>

namespace gerbang::testing {
namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

template <class Fields>
std::size_t count_in(const Fields& fields, std::string_view name) {
  return static_cast<std::size_t>(
      std::count_if(fields.begin(), fields.end(), [&](const auto& f) { return iequals(f.first, name); }));
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const noexcept {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return lower(x) < lower(y); });
}

std::string HttpResponse::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string{} : it->second;
}

bool HttpResponse::has_header(std::string_view name) const { return headers.find(name) != headers.end(); }

std::size_t HttpResponse::header_count(std::string_view name) const { return count_in(headers, name); }

std::string ReceivedRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) {
      return v;
    }
  }
  return {};
}

bool ReceivedRequest::has_header(std::string_view name) const { return header_count(name) > 0; }

std::size_t ReceivedRequest::header_count(std::string_view name) const { return count_in(headers, name); }

std::vector<std::string> ReceivedRequest::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) {
      out.push_back(v);
    }
  }
  return out;
}

std::string format_http_request(std::string_view method, std::string_view target, const HeaderList& headers,
                                std::string_view body, std::string_view default_host) {
  bool has_host = false;
  bool framed = false;
  for (const auto& [name, value] : headers) {
    has_host = has_host || iequals(name, "host");
    framed = framed || iequals(name, "content-length") || iequals(name, "transfer-encoding");
  }
  std::string out;
  out.reserve(128 + body.size());
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!has_host) {
    out.append("Host: ").append(default_host).append("\r\n");
  }
  for (const auto& [name, value] : headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  bool body_method = iequals(method, "POST") || iequals(method, "PUT") || iequals(method, "PATCH");
  if (!framed && (!body.empty() || body_method)) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

std::string json_escape(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 8);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  return out;
}

}  // namespace gerbang::testing
