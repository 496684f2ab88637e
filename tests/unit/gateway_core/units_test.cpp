// Unit parsers and the small value types of the configuration.
#include "gateway/config/units.hpp"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace gerbang::config {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), Duration(250));
  EXPECT_EQ(parse_duration("30s"), Duration(30s));
  EXPECT_EQ(parse_duration("5m"), Duration(5min));
  EXPECT_EQ(parse_duration("1h"), Duration(1h));
  EXPECT_EQ(parse_duration("7d"), Duration(7 * 24h));
}

TEST(ParseDuration, AcceptsZero) {
  EXPECT_EQ(parse_duration("0s"), Duration(0));
  EXPECT_EQ(parse_duration("0ms"), Duration(0));
}

TEST(ParseDuration, RejectsBareNumbersFractionsSignsAndSpaces) {
  for (const char* bad : {"30", "", "s", "1.5s", "-1s", "+1s", "10 s", " 10s", "10s ", "10S", "10sec", "1h30m",
                          "0x10s", "10us", "1e3ms"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_FALSE(parse_duration("18446744073709551616ms").has_value());  // 2^64
  EXPECT_FALSE(parse_duration("9223372036854775808ms").has_value());   // 2^63 > int64 max
  EXPECT_FALSE(parse_duration("106751991167301d").has_value());        // fits u64 digits, overflows in ms
  EXPECT_EQ(parse_duration("9223372036854775807ms"), Duration(Duration::max()));
}

TEST(ParseSize, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("4KiB"), 4096u);
  EXPECT_EQ(parse_size("10MiB"), 10u << 20);
  EXPECT_EQ(parse_size("1GiB"), 1ull << 30);
  EXPECT_EQ(parse_size("1TiB"), 1ull << 40);
  EXPECT_EQ(parse_size("10KB"), 10'000u);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("1GB"), 1'000'000'000u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("0KiB"), 0u);
}

// Decision (documented in docs/config.md): no space between number and unit, like durations.
TEST(ParseSize, RejectsSpaceBeforeUnit) {
  EXPECT_FALSE(parse_size("10 MiB").has_value());
  EXPECT_FALSE(parse_size(" 10MiB").has_value());
}

TEST(ParseSize, RejectsUnknownUnitsFractionsAndSigns) {
  for (const char* bad : {"", "KiB", "1.5MiB", "-1", "+1", "10kib", "10K", "10M", "10mb", "10KiBs", "1_000"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(parse_size("18446744073709551616").has_value());
  EXPECT_EQ(parse_size("16777215TiB"), 16777215ull << 40);
  EXPECT_FALSE(parse_size("16777216TiB").has_value());  // 2^24 * 2^40 = 2^64
}

TEST(ParseEndpoint, AcceptsIpv4Ipv6WildcardAndLocalhost) {
  auto e = parse_endpoint("127.0.0.1:8443");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 8443);

  e = parse_endpoint("[::1]:8443");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->to_string(), "[::1]:8443");

  e = parse_endpoint("*:80");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "*");

  e = parse_endpoint("localhost:0");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->port, 0);

  e = parse_endpoint("0.0.0.0:65535");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->to_string(), "0.0.0.0:65535");
}

TEST(ParseEndpoint, RejectsMissingOrBadPortsAndHosts) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80",
                          "127.0.0.1:80x", "127.0.0.1:000080", "::1:8443", "[::1]", "[::1]8443", "[::1:8443",
                          "[127.0.0.1]:80", "example.com:80", "256.0.0.1:80", "10.1:80", ":80", "", "[]:80",
                          "127.0.0.1 :80"}) {
    EXPECT_FALSE(parse_endpoint(bad).has_value()) << bad;
  }
}

TEST(ParseCidr, ParsesV4AndV6BlocksAndBareAddresses) {
  auto c = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->v6);
  EXPECT_EQ(c->prefix, 8);
  EXPECT_EQ(c->addr[0], 10);
  EXPECT_EQ(c->text, "10.0.0.0/8");

  c = parse_cidr("127.0.0.1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->prefix, 32);

  c = parse_cidr("::1");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->v6);
  EXPECT_EQ(c->prefix, 128);

  c = parse_cidr("2001:db8::/32");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->v6);
  EXPECT_EQ(c->prefix, 32);

  c = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->prefix, 0);
}

TEST(ParseCidr, RejectsHostBitsBadPrefixesAndGarbage) {
  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8",
                          "10.0.0.0/8/8", "10.0.0.0/0008", "2001:db8::1/32", "10.0.0/8", "foo", "", "/8",
                          "10.0.0.0 /8"}) {
    EXPECT_FALSE(parse_cidr(bad).has_value()) << bad;
  }
}

std::array<std::uint8_t, 16> v4(const char* text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET, text, a.data()), 1) << text;
  return a;
}

std::array<std::uint8_t, 16> v6(const char* text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

TEST(Cidr, ContainsIpv4) {
  const auto c = *parse_cidr("10.1.0.0/16");
  EXPECT_TRUE(c.contains(false, v4("10.1.0.0")));
  EXPECT_TRUE(c.contains(false, v4("10.1.255.255")));
  EXPECT_FALSE(c.contains(false, v4("10.2.0.0")));
  EXPECT_FALSE(c.contains(false, v4("11.1.0.1")));

  const auto odd = *parse_cidr("192.168.0.128/25");  // prefix not on a byte boundary
  EXPECT_TRUE(odd.contains(false, v4("192.168.0.200")));
  EXPECT_FALSE(odd.contains(false, v4("192.168.0.127")));

  const auto any = *parse_cidr("0.0.0.0/0");
  EXPECT_TRUE(any.contains(false, v4("203.0.113.9")));
  EXPECT_FALSE(any.contains(true, v6("2001:db8::1")));

  const auto host = *parse_cidr("127.0.0.1");
  EXPECT_TRUE(host.contains(false, v4("127.0.0.1")));
  EXPECT_FALSE(host.contains(false, v4("127.0.0.2")));
}

TEST(Cidr, ContainsIpv6) {
  const auto c = *parse_cidr("2001:db8::/32");
  EXPECT_TRUE(c.contains(true, v6("2001:db8::1")));
  EXPECT_TRUE(c.contains(true, v6("2001:db8:ffff::1")));
  EXPECT_FALSE(c.contains(true, v6("2001:db9::1")));
  EXPECT_FALSE(c.contains(false, v4("32.1.13.184")));  // same leading bytes as 2001:0db8, but IPv4

  const auto lo = *parse_cidr("::1");
  EXPECT_TRUE(lo.contains(true, v6("::1")));
  EXPECT_FALSE(lo.contains(true, v6("::2")));
}

TEST(Cidr, MatchesIpv4MappedIpv6AgainstIpv4Blocks) {
  const auto c = *parse_cidr("10.0.0.0/8");
  EXPECT_TRUE(c.contains(true, v6("::ffff:10.9.8.7")));
  EXPECT_FALSE(c.contains(true, v6("::ffff:11.9.8.7")));
  EXPECT_FALSE(c.contains(true, v6("::10.9.8.7")));         // IPv4-compatible (deprecated), not mapped
  EXPECT_FALSE(c.contains(true, v6("64:ff9b::10.9.8.7")));  // NAT64, not mapped

  const auto lo = *parse_cidr("127.0.0.1/32");
  EXPECT_TRUE(lo.contains(true, v6("::ffff:127.0.0.1")));
}

TEST(Endpoint, ToStringBracketsIpv6Only) {
  EXPECT_EQ((Endpoint{"10.0.0.1", 80}).to_string(), "10.0.0.1:80");
  EXPECT_EQ((Endpoint{"2001:db8::1", 443}).to_string(), "[2001:db8::1]:443");
  EXPECT_EQ((Endpoint{"*", 0}).to_string(), "*:0");
  EXPECT_EQ((Endpoint{"localhost", 9901}).to_string(), "localhost:9901");
}

}  // namespace
}  // namespace gerbang::config
