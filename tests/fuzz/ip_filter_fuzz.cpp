// IP allow/deny lists (policies/ipfilter/ip_filter.hpp) against a naive oracle.
//
// CompiledFilter sorts and merges the blocks into ranges and answers with two binary searches. The oracle
// below checks every block one by one, with the semantics the header documents: deny wins; a non-empty
// allow list admits only its members; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it
// carries, and a block inside ::ffff:0:0/96 is the IPv4 block it carries. Any disagreement aborts.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "policies/ipfilter/ip_filter.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using gerbang::policies::CidrBlock;
using gerbang::policies::IpAddress;
using gerbang::policies::IpFilterConfig;
using gerbang::policies::ipfilter::CompiledFilter;

namespace {

constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool mapped(const std::array<std::uint8_t, 16>& a) { return std::memcmp(a.data(), kMapped, 12) == 0; }

bool bit(const std::uint8_t* a, unsigned i) { return (a[i / 8] >> (7 - i % 8)) & 1; }

// Normalised (family, 16 bytes with v4 first, prefix).
struct Norm {
  bool v6;
  std::array<std::uint8_t, 16> a{};
  unsigned prefix;
};

Norm norm_block(const CidrBlock& b) {
  Norm n{b.v6, b.addr, b.prefix};
  if (b.v6 && b.prefix >= 96 && mapped(b.addr)) {
    n.v6 = false;
    n.a = {};
    std::copy(b.addr.begin() + 12, b.addr.end(), n.a.begin());
    n.prefix = b.prefix - 96;
  }
  return n;
}

Norm norm_addr(const IpAddress& x) {
  Norm n{x.v6, x.bytes, x.v6 ? 128u : 32u};
  if (x.v6 && mapped(x.bytes)) {
    n.v6 = false;
    n.a = {};
    std::copy(x.bytes.begin() + 12, x.bytes.end(), n.a.begin());
    n.prefix = 32;
  }
  return n;
}

bool in_block(const Norm& addr, const Norm& block) {
  if (addr.v6 != block.v6) return false;
  for (unsigned i = 0; i < block.prefix; ++i)
    if (bit(addr.a.data(), i) != bit(block.a.data(), i)) return false;
  return true;
}

CidrBlock make_block(FuzzedDataProvider& fdp) {
  CidrBlock b;
  b.v6 = fdp.ConsumeBool();
  const unsigned bits = b.v6 ? 128 : 32;
  b.prefix = static_cast<std::uint8_t>(fdp.ConsumeIntegralInRange<unsigned>(0, bits));
  if (b.v6 && fdp.ConsumeBool()) {  // steer towards ::ffff:0:0/96 blocks
    std::memcpy(b.addr.data(), kMapped, 12);
    for (unsigned i = 12; i < 16; ++i) b.addr[i] = fdp.ConsumeIntegral<std::uint8_t>();
  } else {
    for (unsigned i = 0; i < bits / 8; ++i) b.addr[i] = fdp.ConsumeIntegral<std::uint8_t>();
  }
  // Host bits cleared, as parse_cidr guarantees for configured blocks.
  for (unsigned i = b.prefix; i < bits; ++i) b.addr[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  b.text = "fuzz";
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  IpFilterConfig cfg;
  const unsigned n_allow = fdp.ConsumeIntegralInRange<unsigned>(0, 8);
  const unsigned n_deny = fdp.ConsumeIntegralInRange<unsigned>(0, 8);
  for (unsigned i = 0; i < n_allow; ++i) cfg.allow.push_back(make_block(fdp));
  for (unsigned i = 0; i < n_deny; ++i) cfg.deny.push_back(make_block(fdp));
  const CompiledFilter filter(cfg);
  GERBANG_FUZZ_CHECK(filter.empty() == cfg.empty());

  std::vector<Norm> allow, deny;
  for (const auto& b : cfg.allow) allow.push_back(norm_block(b));
  for (const auto& b : cfg.deny) deny.push_back(norm_block(b));

  while (fdp.remaining_bytes() > 0) {
    IpAddress addr;
    addr.v6 = fdp.ConsumeBool();
    const int how = fdp.ConsumeIntegralInRange<int>(0, 3);
    if (addr.v6 && how == 0) {
      std::memcpy(addr.bytes.data(), kMapped, 12);
      for (unsigned i = 12; i < 16; ++i) addr.bytes[i] = fdp.ConsumeIntegral<std::uint8_t>();
    } else if (how == 1 && !(cfg.allow.empty() && cfg.deny.empty())) {
      // Near a configured block's edge: its first address, or one of its last, +/- one.
      const auto& pool = !cfg.allow.empty() ? cfg.allow : cfg.deny;
      const auto& b = pool[fdp.ConsumeIntegralInRange<std::size_t>(0, pool.size() - 1)];
      addr.v6 = b.v6;
      addr.bytes = b.addr;
      const unsigned bits = b.v6 ? 128 : 32;
      if (fdp.ConsumeBool()) {
        for (unsigned i = b.prefix; i < bits; ++i) addr.bytes[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
      }
      // +/- 1 on the last byte of the family (carry ignored: that is just another address).
      const unsigned last = bits / 8 - 1;
      const int delta = fdp.ConsumeIntegralInRange<int>(-1, 1);
      addr.bytes[last] = static_cast<std::uint8_t>(addr.bytes[last] + delta);
    } else {
      const unsigned n = addr.v6 ? 16 : 4;
      for (unsigned i = 0; i < n; ++i) addr.bytes[i] = fdp.ConsumeIntegral<std::uint8_t>();
    }
    if (!addr.v6) std::fill(addr.bytes.begin() + 4, addr.bytes.end(), 0);

    const Norm a = norm_addr(addr);
    const bool denied = std::any_of(deny.begin(), deny.end(), [&](const Norm& b) { return in_block(a, b); });
    const bool allowed_by_list =
        allow.empty() || std::any_of(allow.begin(), allow.end(), [&](const Norm& b) { return in_block(a, b); });
    const bool expect = !denied && (cfg.allow.empty() || allowed_by_list);
    if (filter.allows(addr) != expect) {
      std::fprintf(stderr, "ip filter disagrees with the oracle: compiled=%d oracle=%d v6=%d\n",
                   filter.allows(addr), expect, addr.v6);
      std::abort();
    }
  }
  return 0;
}
