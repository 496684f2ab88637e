#include "audit/crc32c.hpp"

#include <array>
#include <cstring>

namespace gerbang::audit {

namespace {

constexpr std::uint32_t poly = 0x82F63B78U;  // Castagnoli, reflected

// tables[k][b]: the CRC of byte b followed by k zero bytes (slice-by-8).
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c & 1U) != 0 ? (c >> 1U) ^ poly : c >> 1U;
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k)
    for (std::uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8U) ^ t[0][t[k - 1][b] & 0xFFU];
  return t;
}

constexpr auto tables = make_tables();

std::uint32_t crc_table(const std::uint8_t* p, std::size_t n, std::uint32_t c) noexcept {
  while (n >= 8) {
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    std::memcpy(&lo, p, 4);  // little-endian host assumed (x86-64, aarch64)
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = tables[7][lo & 0xFFU] ^ tables[6][(lo >> 8U) & 0xFFU] ^ tables[5][(lo >> 16U) & 0xFFU] ^
        tables[4][lo >> 24U] ^ tables[3][hi & 0xFFU] ^ tables[2][(hi >> 8U) & 0xFFU] ^
        tables[1][(hi >> 16U) & 0xFFU] ^ tables[0][hi >> 24U];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8U) ^ tables[0][(c ^ *p++) & 0xFFU];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc_sse42(const std::uint8_t* p, std::size_t n,
                                                          std::uint32_t c) noexcept {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t v = 0;
    std::memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c64);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

bool have_sse42() noexcept {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return yes;
}
#endif

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc) noexcept {
  const std::uint32_t c = ~crc;
#if defined(__x86_64__)
  if (have_sse42()) return ~crc_sse42(data.data(), data.size(), c);
#endif
  return ~crc_table(data.data(), data.size(), c);
}

}  // namespace gerbang::audit
