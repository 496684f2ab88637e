#include "gateway/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gerbang::gateway {
namespace {

using Kind = RouteMatchResult::Kind;

config::RouteConfig route(std::string name, std::string prefix, std::vector<std::string> hosts = {},
                          std::vector<std::string> methods = {}) {
  config::RouteConfig r;
  r.name = std::move(name);
  r.match.path_prefix = std::move(prefix);
  r.match.hosts = std::move(hosts);
  r.match.methods = std::move(methods);
  r.upstream = "u";
  return r;
}

// Route index for a GET with host "h", or -1 when nothing matched.
long matched(const Router& router, std::string_view path, std::string_view host = "h", std::string_view method = "GET") {
  auto r = router.match(host, path, method);
  return r.kind == Kind::matched ? static_cast<long>(r.route) : -1;
}

// ---- prefixes ----------------------------------------------------------------------------------------------

TEST(Router, LongestPrefixWinsWhateverTheConfigurationOrder) {
  Router router({route("root", "/"), route("api", "/api"), route("v2", "/api/v2"), route("static", "/static")});
  EXPECT_EQ(matched(router, "/"), 0);
  EXPECT_EQ(matched(router, "/index.html"), 0);
  EXPECT_EQ(matched(router, "/api"), 1);
  EXPECT_EQ(matched(router, "/api/v1/users"), 1);
  EXPECT_EQ(matched(router, "/api/v2"), 2);
  EXPECT_EQ(matched(router, "/api/v2/users?id=1"), 2);
  EXPECT_EQ(matched(router, "/static/app.js"), 3);

  Router reversed({route("v2", "/api/v2"), route("api", "/api"), route("root", "/")});
  EXPECT_EQ(matched(reversed, "/api/v2/x"), 0);
  EXPECT_EQ(matched(reversed, "/api/x"), 1);
  EXPECT_EQ(matched(reversed, "/other"), 2);
}

TEST(Router, PrefixesMatchWholeSegments) {
  Router router({route("api", "/api")});
  EXPECT_EQ(matched(router, "/api"), 0);
  EXPECT_EQ(matched(router, "/api/"), 0);
  EXPECT_EQ(matched(router, "/api/x"), 0);
  EXPECT_EQ(matched(router, "/api?q=1"), 0);
  EXPECT_EQ(matched(router, "/apix"), -1);
  EXPECT_EQ(matched(router, "/api-v2"), -1);
  EXPECT_EQ(matched(router, "/ap"), -1);
  EXPECT_EQ(matched(router, "/API"), -1) << "paths are case-sensitive";
  EXPECT_EQ(router.match("h", "/apix", "GET").kind, Kind::not_found);
}

TEST(Router, PrefixEndingInSlashMatchesOnlyBelowIt) {
  Router router({route("api", "/api/")});
  EXPECT_EQ(matched(router, "/api/x"), 0);
  EXPECT_EQ(matched(router, "/api/"), 0);
  EXPECT_EQ(matched(router, "/api/x/y?z"), 0);
  EXPECT_EQ(matched(router, "/api"), -1);
  EXPECT_EQ(matched(router, "/apix"), -1);
}

TEST(Router, SegmentBoundaryFallsBackToShorterPrefix) {
  Router router({route("root", "/"), route("api", "/api")});
  EXPECT_EQ(matched(router, "/apix"), 0) << "/apix is not under /api, so the catch-all takes it";
}

TEST(Router, EqualPrefixesKeepConfigurationOrder) {
  Router router({route("first", "/x"), route("second", "/x"), route("root", "/")});
  EXPECT_EQ(matched(router, "/x/y"), 0);
  Router swapped({route("root", "/"), route("second", "/x"), route("first", "/x")});
  EXPECT_EQ(matched(swapped, "/x/y"), 1);
}

TEST(Router, EmptyTableFindsNothing) {
  Router router({});
  auto r = router.match("h", "/", "GET");
  EXPECT_EQ(r.kind, Kind::not_found);
  EXPECT_TRUE(r.allow.empty());
}

// ---- hosts -------------------------------------------------------------------------------------------------

TEST(Router, ExactHostMatchIgnoresCasePortAndTrailingDot) {
  Router router({route("api", "/", {"api.kota.go.id"})});
  EXPECT_EQ(matched(router, "/", "api.kota.go.id"), 0);
  EXPECT_EQ(matched(router, "/", "API.Kota.Go.Id"), 0);
  EXPECT_EQ(matched(router, "/", "api.kota.go.id:8443"), 0);
  EXPECT_EQ(matched(router, "/", "Api.Kota.go.id:443"), 0);
  EXPECT_EQ(matched(router, "/", "api.kota.go.id."), 0);
  EXPECT_EQ(matched(router, "/", "api.kota.go.id.:8443"), 0);
  EXPECT_EQ(matched(router, "/", "www.kota.go.id"), -1);
  EXPECT_EQ(matched(router, "/", "api.kota.go.id.evil"), -1);
  EXPECT_EQ(matched(router, "/", "xapi.kota.go.id"), -1);
  EXPECT_EQ(matched(router, "/", ""), -1);
}

TEST(Router, ConfiguredHostsAreNormalisedToo) {
  Router router({route("api", "/", {"API.Example.COM."})});
  EXPECT_EQ(matched(router, "/", "api.example.com"), 0);
}

TEST(Router, WildcardHostMatchesSubdomainsButNotTheApex) {
  Router router({route("kota", "/", {"*.kota.go.id"})});
  EXPECT_EQ(matched(router, "/", "a.kota.go.id"), 0);
  EXPECT_EQ(matched(router, "/", "deep.a.kota.go.id"), 0);
  EXPECT_EQ(matched(router, "/", "A.KOTA.GO.ID:8443"), 0);
  EXPECT_EQ(matched(router, "/", "kota.go.id"), -1);
  EXPECT_EQ(matched(router, "/", "xkota.go.id"), -1);
  EXPECT_EQ(matched(router, "/", "a.kota.go.id.evil.com"), -1);
  EXPECT_EQ(matched(router, "/", "other.go.id"), -1);
}

TEST(Router, EmptyHostListMatchesAnyHost) {
  Router router({route("any", "/")});
  EXPECT_EQ(matched(router, "/", "anything.example"), 0);
  EXPECT_EQ(matched(router, "/", ""), 0);
}

TEST(Router, HostMismatchOnLongerPrefixFallsBackToShorter) {
  Router router({route("generic", "/api"), route("tenant", "/api/v2", {"tenant.example"})});
  EXPECT_EQ(matched(router, "/api/v2/x", "tenant.example"), 1);
  EXPECT_EQ(matched(router, "/api/v2/x", "other.example"), 0);
}

TEST(Router, Ipv6LiteralHost) {
  Router router({route("v6", "/", {"[::1]"})});
  EXPECT_EQ(matched(router, "/", "[::1]:8443"), 0);
  EXPECT_EQ(matched(router, "/", "[::1]"), 0);
  EXPECT_EQ(matched(router, "/", "[::2]"), -1);
}

// ---- methods -----------------------------------------------------------------------------------------------

TEST(Router, MethodListGivesMatchedOrMethodNotAllowedWithAllow) {
  Router router({route("api", "/api", {}, {"GET", "POST"})});
  EXPECT_EQ(matched(router, "/api", "h", "GET"), 0);
  EXPECT_EQ(matched(router, "/api", "h", "POST"), 0);
  auto r = router.match("h", "/api/x", "DELETE");
  EXPECT_EQ(r.kind, Kind::method_not_allowed);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(router.match("h", "/api", "get").kind, Kind::method_not_allowed) << "methods are case-sensitive";
  EXPECT_EQ(router.match("h", "/other", "DELETE").kind, Kind::not_found);
}

TEST(Router, EqualPrefixesSplitByMethodShareOneAllowList) {
  Router router({route("read", "/x", {}, {"GET", "HEAD"}), route("write", "/x", {}, {"POST", "GET"})});
  EXPECT_EQ(matched(router, "/x", "h", "GET"), 0) << "configuration order decides between equal prefixes";
  EXPECT_EQ(matched(router, "/x", "h", "POST"), 1);
  auto r = router.match("h", "/x", "PUT");
  EXPECT_EQ(r.kind, Kind::method_not_allowed);
  EXPECT_EQ(r.allow, "GET, HEAD, POST") << "each method once";
}

TEST(Router, OnlyTheLongestMatchingPrefixCompetesOnMethod) {
  // The catch-all allows DELETE, but /api is the better match and does not: 405, not a silent reroute.
  Router router({route("root", "/"), route("api", "/api", {}, {"GET"})});
  auto r = router.match("h", "/api/x", "DELETE");
  EXPECT_EQ(r.kind, Kind::method_not_allowed);
  EXPECT_EQ(r.allow, "GET");
  EXPECT_EQ(matched(router, "/other", "h", "DELETE"), 0);
}

TEST(Router, AllowListKeepsMethodsThatAreSubstringsOfOthers) {
  // WebDAV's PROPPATCH contains PATCH; both must be advertised.
  Router router({route("dav", "/dav", {}, {"PROPPATCH", "PATCH"})});
  auto r = router.match("h", "/dav", "GET");
  EXPECT_EQ(r.kind, Kind::method_not_allowed);
  EXPECT_EQ(r.allow, "PROPPATCH, PATCH");

  Router split({route("a", "/dav", {}, {"PROPPATCH"}), route("b", "/dav", {}, {"PATCH"})});
  EXPECT_EQ(split.match("h", "/dav", "GET").allow, "PROPPATCH, PATCH");
}

// ---- unsafe paths ------------------------------------------------------------------------------------------

TEST(UnsafePath, DotSegmentsLiteralOrEncoded) {
  EXPECT_TRUE(has_unsafe_path_segments("/a/../b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/./b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/.."));
  EXPECT_TRUE(has_unsafe_path_segments("/a/."));
  EXPECT_TRUE(has_unsafe_path_segments("/.."));
  EXPECT_TRUE(has_unsafe_path_segments("/a/..?q=1"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2e%2e/b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2E%2E/b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2E/b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/.%2e/b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2e."));
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2e"));
}

TEST(UnsafePath, EncodedSlashesAndBackslash) {
  EXPECT_TRUE(has_unsafe_path_segments("/a/%2f"));
  EXPECT_TRUE(has_unsafe_path_segments("/a%2Fb"));
  EXPECT_TRUE(has_unsafe_path_segments("/a%5cb"));
  EXPECT_TRUE(has_unsafe_path_segments("/a%5Cb"));
  EXPECT_TRUE(has_unsafe_path_segments("/a\\b"));
  EXPECT_TRUE(has_unsafe_path_segments("/a\\..\\b"));
}

TEST(UnsafePath, DotsInsideNamesAreFine) {
  EXPECT_FALSE(has_unsafe_path_segments("/"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/..b"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/b.."));
  EXPECT_FALSE(has_unsafe_path_segments("/a/b.c"));
  EXPECT_FALSE(has_unsafe_path_segments("/..."));
  EXPECT_FALSE(has_unsafe_path_segments("/.well-known/acme"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/%2e%2e%2e"));
  EXPECT_FALSE(has_unsafe_path_segments("/a//b"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/%20b"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/%2"));
  EXPECT_FALSE(has_unsafe_path_segments("/a/%"));
}

TEST(UnsafePath, QueryIsIgnored) {
  EXPECT_FALSE(has_unsafe_path_segments("/a?x=/../b"));
  EXPECT_FALSE(has_unsafe_path_segments("/a?p=%2f%2e%2e%5c"));
  EXPECT_FALSE(has_unsafe_path_segments("/a?\\"));
  EXPECT_TRUE(has_unsafe_path_segments("/a/../b?x=1"));
}

// ---- prefix stripping --------------------------------------------------------------------------------------

TEST(StripRoutePrefix, RemovesWholePrefixAndKeepsLeadingSlash) {
  EXPECT_EQ(strip_route_prefix("/echo/x?y", "/echo"), "/x?y");
  EXPECT_EQ(strip_route_prefix("/echo/x/y", "/echo"), "/x/y");
  EXPECT_EQ(strip_route_prefix("/echo", "/echo"), "/");
  EXPECT_EQ(strip_route_prefix("/echo?q", "/echo"), "/?q");
  EXPECT_EQ(strip_route_prefix("/echo/", "/echo"), "/");
}

TEST(StripRoutePrefix, PrefixEndingInSlash) {
  EXPECT_EQ(strip_route_prefix("/api/x", "/api/"), "/x");
  EXPECT_EQ(strip_route_prefix("/api/x?y=1", "/api/"), "/x?y=1");
  EXPECT_EQ(strip_route_prefix("/api/", "/api/"), "/");
  EXPECT_EQ(strip_route_prefix("/x?y", "/"), "/x?y");
  EXPECT_EQ(strip_route_prefix("/", "/"), "/");
}

// ---- host normalisation ------------------------------------------------------------------------------------

TEST(NormalizeHost, DropsPortLowersAndTrimsTrailingDot) {
  EXPECT_EQ(normalize_host("Api.Example:8443"), "api.example");
  EXPECT_EQ(normalize_host("api.example"), "api.example");
  EXPECT_EQ(normalize_host("example.com."), "example.com");
  EXPECT_EQ(normalize_host("Example.COM.:443"), "example.com");
  EXPECT_EQ(normalize_host("127.0.0.1:8080"), "127.0.0.1");
  EXPECT_EQ(normalize_host(""), "");
}

TEST(NormalizeHost, Ipv6LiteralKeepsBracketsAndDropsPort) {
  EXPECT_EQ(normalize_host("[::1]:8443"), "[::1]");
  EXPECT_EQ(normalize_host("[::1]"), "[::1]");
  EXPECT_EQ(normalize_host("[2001:DB8::1]:443"), "[2001:db8::1]");
}

}  // namespace
}  // namespace gerbang::gateway
