// PolicySet assembly: stage order, skipped stages, listener filters, worker state, build errors.
#include "policies/policy_set.hpp"

#include <arpa/inet.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.hpp"
#include "policies/ratelimit/ratelimit_stage.hpp"

namespace gerbang::policies {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string_view> names(std::span<const Stage* const> stages) {
  std::vector<std::string_view> out;
  for (const auto* s : stages) out.push_back(s->name());
  return out;
}

CidrBlock v4_block(const char* text, std::uint8_t prefix) {
  CidrBlock b;
  b.text = text;
  inet_pton(AF_INET, text, b.addr.data());
  b.prefix = prefix;
  return b;
}

IpAddress v4(const char* text) {
  IpAddress a;
  a.text = text;
  inet_pton(AF_INET, text, a.bytes.data());
  return a;
}

TEST(PolicySet, BuildsStagesInOrderAndSkipsIdleOnes) {
  ASSERT_TRUE(crypto::init_sodium());
  RoutePolicyConfig open;  // no policy at all
  RoutePolicyConfig full;
  full.ip.allow.push_back(v4_block("10.0.0.0", 8));
  full.has_auth = true;
  full.auth.methods = {"mtls"};
  full.allow.push_back(AllowRule{{"*authenticated*"}, {}, {}});
  full.rate_limits.push_back(RateLimitRule{"10/s", {RateKeyPart::consumer}, 10, std::chrono::seconds(1), 0});
  RoutePolicyConfig limited;
  limited.rate_limits = full.rate_limits;

  std::vector<ConsumerConfig> consumers(1);
  consumers[0].id = "c";
  consumers[0].mtls.push_back(MtlsMatch{.subject = "CN=c"});
  IpFilterConfig listener_filter;
  listener_filter.deny.push_back(v4_block("192.0.2.0", 24));

  PolicySet::Inputs in;
  in.consumers = &consumers;
  in.routes = {{"open", &open}, {"full", &full}, {"limited", &limited}};
  in.listeners = {nullptr, &listener_filter};
  std::vector<std::string> errors;
  auto set = PolicySet::create(in, errors);
  ASSERT_NE(set, nullptr) << errors.front();
  EXPECT_TRUE(set->route_stages(0).empty());
  EXPECT_THAT(names(set->route_stages(1)), ElementsAre("ipfilter", "authn", "authz", "ratelimit"));
  EXPECT_THAT(names(set->route_stages(2)), ElementsAre("ratelimit"));
  EXPECT_TRUE(set->route_stages(99).empty());

  EXPECT_TRUE(set->check_listener(0, v4("192.0.2.1")).is_next());
  EXPECT_EQ(set->check_listener(1, v4("192.0.2.1")).reason, Reason::ipfilter_denied);
  EXPECT_TRUE(set->check_listener(1, v4("198.51.100.1")).is_next());

  // The worker state exposes the rate-limit buckets to the stage.
  auto ws = set->make_worker_state(nullptr);
  ASSERT_NE(ws, nullptr);
  EXPECT_NE(dynamic_cast<ratelimit::HasWorkerBuckets*>(ws.get()), nullptr);

  // A full request through the chain: authenticated, allowed.
  RequestContext ctx;
  PeerCertificate cert;
  cert.subject = "CN=c";
  ctx.request.method = "GET";
  ctx.request.client = v4("10.1.2.3");
  ctx.request.client_cert = &cert;
  ctx.worker_slot = ws.get();
  for (const auto* s : set->route_stages(1)) {
    if (s->is_async()) continue;
    ASSERT_TRUE(s->on_request_head(ctx).is_next()) << s->name();
  }
  EXPECT_EQ(ctx.principal.consumer, "c");
}

TEST(PolicySet, ReportsBuildErrors) {
  ASSERT_TRUE(crypto::init_sodium());
  RoutePolicyConfig no_auth;
  no_auth.allow.push_back(AllowRule{{"c"}, {}, {}});
  std::vector<ConsumerConfig> consumers(2);
  consumers[0].id = "a";
  consumers[0].api_keys.push_back(ApiKeyCredential{"abcdefgh", "blake2b:" + std::string(64, '0')});
  consumers[1].id = "b";
  consumers[1].api_keys.push_back(ApiKeyCredential{"abcdefgh", "blake2b:" + std::string(64, '1')});
  consumers[1].jwt.push_back(JwtMatch{"nope", "s"});
  AuthConfig auth;
  JwtIssuerConfig idp;
  idp.name = "idp";
  idp.issuer = "https://idp";
  idp.audiences = {"x"};
  idp.jwks_file = "/nonexistent/jwks.json";
  auth.jwt_issuers.push_back(idp);
  PolicySet::Inputs in;
  in.consumers = &consumers;
  in.auth = &auth;
  in.routes = {{"r", &no_auth}};
  std::vector<std::string> errors;
  EXPECT_EQ(PolicySet::create(in, errors), nullptr);
  std::string all;
  for (const auto& e : errors) all += e + "\n";
  EXPECT_THAT(all, HasSubstr("allow needs auth"));
  EXPECT_THAT(all, HasSubstr("\"abcdefgh\" is used twice"));
  EXPECT_THAT(all, HasSubstr("unknown issuer \"nope\""));
  EXPECT_THAT(all, HasSubstr("cannot read JWKS file"));
}

// Which t:lowercase the engine runs, then per WAF route how many rules its compiled set leaves out, or why
// none (logged at start and on reload); a route that excludes a CRS paranoia skip rule gets its rule set in full.
TEST(PolicySet, NotesSayWhatEachWafRouteLeavesOut) {
  RoutePolicyConfig none;
  WafRouteConfig waf;
  waf.mode = WafRouteConfig::Mode::block;
  WafRouteConfig excluded = waf;
  excluded.exclude_rules = {911013};
  WafRouteConfig off;  // mode off: no stage, no note
  PolicySet::Inputs in;
  in.routes = {{"api", &none, &waf}, {"legacy", &none, &excluded}, {"static", &none, &off}};
  std::vector<std::string> errors;
  const auto set = PolicySet::create(in, errors);
  ASSERT_NE(set, nullptr) << (errors.empty() ? "" : errors.front());
  const auto notes = set->notes();
  ASSERT_EQ(notes.size(), 3u);
  // First the engine's own note (waf/lowercase.hpp): this build runs against libmodsecurity 3.0.9.
  EXPECT_THAT(notes[0], HasSubstr("WAF engine: t:lowercase: one locale lookup per value instead of one per byte"));
  EXPECT_THAT(notes[1], HasSubstr("route api: WAF rule set: "));
  EXPECT_THAT(notes[1], HasSubstr("rules left out (never evaluated at paranoia 1, or set up ahead of the CRS)"));
  EXPECT_THAT(notes[2],
              HasSubstr("route legacy: WAF rule set: compiled in full (the route excludes skip rule 911013)"));
}

TEST(Reasons, PolicyReasonsHaveStableNamesAndStatuses) {
  struct Row {
    Reason r;
    const char* name;
    unsigned status;
  };
  for (const auto& row : {Row{Reason::ipfilter_denied, "ipfilter.denied", 403},
                          Row{Reason::authn_missing_credential, "authn.missing_credential", 401},
                          Row{Reason::authn_invalid_credential, "authn.invalid_credential", 401},
                          Row{Reason::authz_denied, "authz.denied", 403},
                          Row{Reason::ratelimit_exceeded, "ratelimit.exceeded", 429},
                          Row{Reason::ratelimit_backend_unavailable, "ratelimit.backend_unavailable", 503},
                          Row{Reason::upstream_concurrency_limit, "upstream.concurrency_limit", 503}}) {
    EXPECT_EQ(to_string(row.r), row.name);
    EXPECT_EQ(info(row.r).status, row.status);
  }
  // Appended after the gateway's own reasons, so released names keep their values.
  EXPECT_GT(static_cast<std::size_t>(Reason::upstream_concurrency_limit),
            static_cast<std::size_t>(Reason::gateway_internal_error));
}

}  // namespace
}  // namespace gerbang::policies
