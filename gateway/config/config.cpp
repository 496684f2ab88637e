#include "gateway/config/config.hpp"

namespace gerbang::config {

std::string Endpoint::to_string() const {
  // A colon in the host means an IPv6 literal, which needs brackets to keep the port unambiguous.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) noexcept {
  unsigned i = 0;
  for (; prefix >= 8; prefix -= 8, ++i)
    if (a[i] != b[i]) return false;
  if (prefix == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - prefix));
  return (a[i] & mask) == (b[i] & mask);
}

}  // namespace

bool Cidr::contains(bool is_v6, const std::array<std::uint8_t, 16>& addr16) const noexcept {
  if (!is_v6) return !v6 && prefix_equal(addr.data(), addr16.data(), prefix);
  if (v6) return prefix_equal(addr.data(), addr16.data(), prefix);
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they must still match the v4 blocks.
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (int i = 0; i < 12; ++i)
    if (addr16[i] != kMapped[i]) return false;
  return prefix_equal(addr.data(), addr16.data() + 12, prefix);
}

const UpstreamConfig* Config::find_upstream(std::string_view name) const {
  for (const auto& u : upstreams)
    if (u.name == name) return &u;
  return nullptr;
}

}  // namespace gerbang::config
