// The scalar parsers of the configuration (gateway/config/units.hpp): durations, sizes, CIDR blocks and
// endpoints, each on the whole input.
//
// Invariants: no crash or UB (overflow is rejected, not wrapped); a parsed CIDR has a prefix within its
// family and no host bits set, and contains its own network address; a decimal size with no unit reads back
// as the number; a duration is non-negative; an endpoint's host is non-empty.
#include <charconv>
#include <string>

#include "gateway/config/units.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace gerbang::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = gerbang::fuzz::as_view(data, size);

  if (const auto d = parse_duration(in)) {
    GERBANG_FUZZ_CHECK(d->count() >= 0);
  }

  if (const auto s = parse_size(in)) {
    std::uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(in.data(), in.data() + in.size(), n);
    if (ec == std::errc{} && ptr == in.data() + in.size()) {
      GERBANG_FUZZ_CHECK(*s == n);
    }
  }

  if (const auto c = parse_cidr(in)) {
    const unsigned bits = c->v6 ? 128 : 32;
    GERBANG_FUZZ_CHECK(c->prefix <= bits);
    for (unsigned i = c->prefix; i < bits; ++i) {
      GERBANG_FUZZ_CHECK((c->addr[i / 8] & (0x80u >> (i % 8))) == 0);
    }
    if (!c->v6) {
      for (unsigned i = 4; i < 16; ++i) GERBANG_FUZZ_CHECK(c->addr[i] == 0);
    }
    GERBANG_FUZZ_CHECK(c->contains(c->v6, c->addr));
    // Parsing the block's own text again gives the same block.
    const auto again = parse_cidr(c->text);
    GERBANG_FUZZ_CHECK(again && again->v6 == c->v6 && again->addr == c->addr && again->prefix == c->prefix);
  }

  if (const auto e = parse_endpoint(in)) {
    GERBANG_FUZZ_CHECK(!e->host.empty());
    (void)e->to_string();
  }
  return 0;
}
