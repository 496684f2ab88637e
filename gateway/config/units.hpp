// Parsers for the scalar units used in the configuration. Pure, noexcept, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "gateway/config/config.hpp"

namespace gerbang::config {

// "250ms", "30s", "5m", "1h", "7d" (a non-negative integer and exactly one unit). Bare numbers are rejected.
std::optional<Duration> parse_duration(std::string_view text) noexcept;

// "512", "512B", "4KiB", "10MiB", "1GiB", "1TiB" (binary units) and "10KB"/"10MB"/"1GB" (decimal units).
// Overflow is rejected.
std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;

// "10.0.0.0/8", "2001:db8::/32", "127.0.0.1" (= /32), "::1" (= /128). Host bits set beyond the prefix are
// rejected ("10.0.0.1/8" is almost always a typo).
std::optional<Cidr> parse_cidr(std::string_view text) noexcept;

// "127.0.0.1:8443", "[::1]:8443", "*:8443", "localhost:8443". The port is required (0 allowed).
std::optional<Endpoint> parse_endpoint(std::string_view text) noexcept;

}  // namespace gerbang::config
