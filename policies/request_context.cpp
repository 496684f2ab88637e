#include "policies/request_context.hpp"

namespace gerbang::policies {
namespace {

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string_view> RequestView::header(std::string_view name) const noexcept {
  for (const auto& h : headers) {
    if (iequal(h.name, name)) {
      return h.value;
    }
  }
  return std::nullopt;
}

std::size_t RequestView::header_count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (const auto& h : headers) {
    n += iequal(h.name, name) ? 1 : 0;
  }
  return n;
}

std::string_view to_string(AuthMethod m) noexcept {
  switch (m) {
    case AuthMethod::none: return "none";
    case AuthMethod::anonymous: return "anonymous";
    case AuthMethod::mtls: return "mtls";
    case AuthMethod::api_key: return "api_key";
    case AuthMethod::jwt: return "jwt";
  }
  return "none";
}

}  // namespace gerbang::policies
