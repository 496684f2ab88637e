// CIDR matching: IPv4, IPv6, IPv4-mapped IPv6, allow/deny precedence, range merging edges.
#include "policies/ipfilter/ip_filter.hpp"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace gerbang::policies::ipfilter {
namespace {

IpAddress addr(const std::string& text) {
  IpAddress a;
  a.text = text;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) return a;
  a.v6 = true;
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) != 1) throw std::runtime_error("bad address " + text);
  return a;
}

CidrBlock block(const std::string& text) {
  const auto slash = text.find('/');
  IpAddress a = addr(text.substr(0, slash));
  CidrBlock b;
  b.text = text;
  b.v6 = a.v6;
  b.addr = a.bytes;
  b.prefix = static_cast<std::uint8_t>(slash == std::string::npos ? (a.v6 ? 128 : 32) : std::stoi(text.substr(slash + 1)));
  return b;
}

IpFilterConfig filter(std::vector<std::string> allow, std::vector<std::string> deny) {
  IpFilterConfig c;
  for (const auto& s : allow) c.allow.push_back(block(s));
  for (const auto& s : deny) c.deny.push_back(block(s));
  return c;
}

TEST(IpFilter, EmptyAllowsEveryoneAndBuildsNoStage) {
  CompiledFilter f(IpFilterConfig{});
  EXPECT_TRUE(f.empty());
  EXPECT_TRUE(f.allows(addr("1.2.3.4")));
  EXPECT_EQ(make_ipfilter_stage(IpFilterConfig{}), nullptr);
}

TEST(IpFilter, Ipv4AllowAndDeny) {
  CompiledFilter f(filter({"10.0.0.0/8", "192.168.1.0/24"}, {"10.66.0.0/16"}));
  EXPECT_TRUE(f.allows(addr("10.0.0.1")));
  EXPECT_TRUE(f.allows(addr("10.255.255.255")));
  EXPECT_FALSE(f.allows(addr("11.0.0.0")));
  EXPECT_FALSE(f.allows(addr("9.255.255.255")));
  EXPECT_FALSE(f.allows(addr("10.66.1.2")));  // deny wins
  EXPECT_TRUE(f.allows(addr("192.168.1.255")));
  EXPECT_FALSE(f.allows(addr("192.168.2.0")));
  EXPECT_FALSE(f.allows(addr("2001:db8::1")));  // a v4 allow list does not admit v6
}

TEST(IpFilter, DenyOnlyLetsOthersThrough) {
  CompiledFilter f(filter({}, {"203.0.113.7", "2001:db8:bad::/48"}));
  EXPECT_FALSE(f.allows(addr("203.0.113.7")));
  EXPECT_TRUE(f.allows(addr("203.0.113.8")));
  EXPECT_FALSE(f.allows(addr("2001:db8:bad:1::1")));
  EXPECT_TRUE(f.allows(addr("2001:db8:bae::1")));
}

TEST(IpFilter, Ipv6Prefixes) {
  CompiledFilter f(filter({"2001:db8::/32", "fd00::/8", "::1"}, {}));
  EXPECT_TRUE(f.allows(addr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(f.allows(addr("2001:db9::")));
  EXPECT_TRUE(f.allows(addr("fdff::1")));
  EXPECT_TRUE(f.allows(addr("::1")));
  EXPECT_FALSE(f.allows(addr("::2")));
  EXPECT_FALSE(f.allows(addr("127.0.0.1")));
  CompiledFilter all(filter({"::/0", "0.0.0.0/0"}, {}));
  EXPECT_TRUE(all.allows(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(all.allows(addr("255.255.255.255")));
  CompiledFilter split(filter({"2001:db8::/65"}, {}));  // a prefix that crosses the 64-bit halves
  EXPECT_TRUE(split.allows(addr("2001:db8::7fff:ffff:ffff:ffff")));
  EXPECT_FALSE(split.allows(addr("2001:db8::8000:0:0:0")));
}

TEST(IpFilter, MappedIpv6IsTreatedAsIpv4) {
  CompiledFilter f(filter({"192.0.2.0/24"}, {"192.0.2.66"}));
  EXPECT_TRUE(f.allows(addr("::ffff:192.0.2.1")));
  EXPECT_FALSE(f.allows(addr("::ffff:192.0.2.66")));  // a dual-stack socket cannot dodge the deny
  EXPECT_FALSE(f.allows(addr("::ffff:198.51.100.1")));
  // A mapped block in the config is an IPv4 block too.
  CompiledFilter g(filter({"::ffff:10.0.0.0/104"}, {}));
  EXPECT_TRUE(g.allows(addr("10.1.2.3")));
  EXPECT_FALSE(g.allows(addr("11.1.2.3")));
}

TEST(IpFilter, OverlappingAndAdjacentBlocksMerge) {
  CompiledFilter f(filter({"10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.1.0/32", "0.0.0.0/32",
                           "255.255.255.255/32"},
                          {}));
  EXPECT_TRUE(f.allows(addr("10.0.0.200")));
  EXPECT_TRUE(f.allows(addr("10.0.1.0")));
  EXPECT_FALSE(f.allows(addr("10.0.1.1")));
  EXPECT_TRUE(f.allows(addr("0.0.0.0")));
  EXPECT_TRUE(f.allows(addr("255.255.255.255")));
  EXPECT_FALSE(f.allows(addr("255.255.255.254")));
}

TEST(IpFilter, StageDeniesWith403) {
  auto s = make_ipfilter_stage(filter({"10.0.0.0/8"}, {}));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->name(), "ipfilter");
  RequestContext ctx;
  ctx.request.client = addr("10.1.1.1");
  EXPECT_TRUE(s->on_request_head(ctx).is_next());
  ctx.request.client = addr("8.8.8.8");
  const auto v = s->on_request_head(ctx);
  EXPECT_EQ(v.reason, Reason::ipfilter_denied);
  EXPECT_EQ(info(v.reason).status, 403u);
  EXPECT_EQ(to_string(v.reason), "ipfilter.denied");
}

}  // namespace
}  // namespace gerbang::policies::ipfilter
