// Scalar unit parsers for the configuration. Strict on purpose: a config value that could be read two ways
// ("30" — seconds or milliseconds?) is rejected rather than guessed.
#include "gateway/config/units.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace gerbang::config {
namespace {

// Leading run of ASCII digits as an unsigned value; rejects empty, signs and overflow.
// On success, `rest` is what follows the digits.
std::optional<std::uint64_t> leading_uint(std::string_view text, std::string_view& rest) noexcept {
  std::size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + n, v);
  if (ec != std::errc{} || ptr != text.data() + n) return std::nullopt;
  rest = text.substr(n);
  return v;
}

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) noexcept {
  static constexpr Unit kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000},
  };
  std::string_view rest;
  auto n = leading_uint(text, rest);
  if (!n) return std::nullopt;
  for (const auto& u : kUnits) {
    if (rest != u.suffix) continue;
    std::uint64_t ms = 0;
    if (__builtin_mul_overflow(*n, u.factor, &ms)) return std::nullopt;
    if (ms > static_cast<std::uint64_t>(Duration::max().count())) return std::nullopt;
    return Duration(static_cast<Duration::rep>(ms));
  }
  return std::nullopt;  // bare number, unknown unit, fraction, space, ...
}

std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
      {"KB", 1'000},
      {"MB", 1'000'000},
      {"GB", 1'000'000'000},
      {"TB", 1'000'000'000'000},
  };
  std::string_view rest;
  auto n = leading_uint(text, rest);
  if (!n) return std::nullopt;
  for (const auto& u : kUnits) {
    if (rest != u.suffix) continue;
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(*n, u.factor, &bytes)) return std::nullopt;
    return bytes;
  }
  return std::nullopt;
}

std::optional<Cidr> parse_cidr(std::string_view text) noexcept {
  try {
    Cidr c;
    c.text = std::string(text);
    const auto slash = text.find('/');
    const std::string host(text.substr(0, slash));
    c.v6 = host.find(':') != std::string::npos;
    if (inet_pton(c.v6 ? AF_INET6 : AF_INET, host.c_str(), c.addr.data()) != 1) return std::nullopt;
    const unsigned max_prefix = c.v6 ? 128 : 32;
    unsigned prefix = max_prefix;
    if (slash != std::string_view::npos) {
      std::string_view digits = text.substr(slash + 1), rest;
      if (digits.size() > 3) return std::nullopt;
      auto p = leading_uint(digits, rest);
      if (!p || !rest.empty() || *p > max_prefix) return std::nullopt;
      prefix = static_cast<unsigned>(*p);
    }
    c.prefix = static_cast<std::uint8_t>(prefix);
    // Host bits beyond the prefix must be zero: "10.0.0.1/8" is almost always a typo for a single address.
    const unsigned bytes = max_prefix / 8;
    for (unsigned i = 0; i < bytes; ++i) {
      const unsigned bit0 = i * 8;
      std::uint8_t mask = 0;
      if (prefix >= bit0 + 8) mask = 0xff;
      else if (prefix > bit0) mask = static_cast<std::uint8_t>(0xff << (8 - (prefix - bit0)));
      if ((c.addr[i] & ~mask & 0xff) != 0) return std::nullopt;
    }
    return c;
  } catch (...) {  // std::bad_alloc from the strings; keep the noexcept promise honest
    return std::nullopt;
  }
}

std::optional<Endpoint> parse_endpoint(std::string_view text) noexcept {
  try {
    std::string_view host, port_text;
    if (!text.empty() && text.front() == '[') {
      const auto close = text.find(']');
      if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
      host = text.substr(1, close - 1);
      port_text = text.substr(close + 2);
      std::array<std::uint8_t, 16> buf{};
      if (inet_pton(AF_INET6, std::string(host).c_str(), buf.data()) != 1) return std::nullopt;
    } else {
      const auto colon = text.rfind(':');
      if (colon == std::string_view::npos) return std::nullopt;
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      if (host != "*" && host != "localhost") {
        // IPv6 literals need brackets; anything else must be a dotted-quad IPv4 literal.
        std::array<std::uint8_t, 4> buf{};
        if (inet_pton(AF_INET, std::string(host).c_str(), buf.data()) != 1) return std::nullopt;
      }
    }
    std::string_view rest;
    if (port_text.size() > 5) return std::nullopt;
    auto port = leading_uint(port_text, rest);
    if (!port || !rest.empty() || *port > 65535) return std::nullopt;
    return Endpoint{std::string(host), static_cast<std::uint16_t>(*port)};
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace gerbang::config
