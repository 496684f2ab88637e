// The authn stage through a real PolicySet: mTLS mapping, API keys (header and query opt-in), JWT to consumer
// mapping, anonymous routes, 401 reasons and challenges, identity headers and their Ed25519 signature.
#include "policies/authn/authn_stage.hpp"

#include <list>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/sodium.hpp"
#include "jwt_test_keys.hpp"
#include "policies/authn/api_keys.hpp"
#include "policies/authn/identity_assertion.hpp"
#include "policies/policy_set.hpp"

namespace gerbang::policies {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::KeyKind;

constexpr std::int64_t kNow = 1'800'000'000;

class Authn : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init_sodium());
    key_ = authn::generate_api_key();
    other_key_ = authn::generate_api_key();

    ConsumerConfig dinkes;
    dinkes.id = "dinkes-app";
    dinkes.groups = {"dinkes", "internal"};
    dinkes.department = "Dinas Kesehatan";
    dinkes.mtls.push_back(MtlsMatch{.subject = "CN=dinkes-app,OU=dinkes"});
    dinkes.api_keys.push_back(ApiKeyCredential{key_.id, key_.hash()});
    ConsumerConfig partner;
    partner.id = "partner";
    partner.groups = {"partners"};
    partner.mtls.push_back(MtlsMatch{.san_uri = "spiffe://kota/partner"});
    partner.mtls.push_back(MtlsMatch{.fingerprint_sha256 = std::string(64, 'a')});
    partner.api_keys.push_back(ApiKeyCredential{other_key_.id, other_key_.hash()});
    partner.jwt.push_back(JwtMatch{"idp", "user-1"});
    ConsumerConfig both;  // needs subject AND URI
    both.id = "strict";
    both.mtls.push_back(MtlsMatch{.subject = "CN=strict", .san_uri = "spiffe://kota/strict"});
    consumers_ = {dinkes, partner, both};

    ed_ = std::make_unique<testing::TestKey>(testing::make_key(KeyKind::ed25519, "ed"));
    JwtIssuerConfig idp;
    idp.name = "idp";
    idp.issuer = "https://idp.example";
    idp.audiences = {"gerbang"};
    idp.jwks_file = dir_.write("jwks.json", R"({"keys":[)" + testing::jwk(*ed_) + "]}", 0644);
    auth_.jwt_issuers = {idp};
  }

  std::unique_ptr<PolicySet> build(RoutePolicyConfig route) {
    route_ = route;
    PolicySet::Inputs in;
    in.consumers = &consumers_;
    in.auth = &auth_;
    in.identity = &identity_;
    in.routes = {{"r", &route_}};
    std::vector<std::string> errors;
    auto set = PolicySet::create(in, errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    return set;
  }

  static RoutePolicyConfig route(std::vector<std::string> methods, bool anonymous = false) {
    RoutePolicyConfig r;
    r.has_auth = true;
    r.auth.methods = std::move(methods);
    r.auth.anonymous = anonymous;
    r.allow.push_back(AllowRule{{"*authenticated*", "*anonymous*"}, {}, {}});
    return r;
  }

  // Runs the route's first stage (authn).
  Verdict run(const PolicySet& set, RequestContext& ctx) {
    auto stages = set.route_stages(0);
    EXPECT_GE(stages.size(), 1u);
    EXPECT_EQ(stages[0]->name(), "authn");
    return stages[0]->on_request_head(ctx);
  }

  // Header names and values are copied into storage that lives as long as the fixture (views stay valid).
  RequestContext ctx(std::vector<std::pair<std::string, std::string>> headers = {}, std::string_view target = "/x") {
    auto& owned = owned_.emplace_back(std::move(headers));
    auto& fields = fields_.emplace_back();
    for (const auto& [n, v] : owned) fields.push_back(HeaderField{n, v});
    RequestContext c;
    c.request.method = "GET";
    c.request.target = target;
    c.request.path = "/x";
    c.request.headers = fields;
    c.request.now = std::chrono::system_clock::time_point{std::chrono::seconds{kNow}};
    c.request.request_id = "req-1";
    return c;
  }

  std::string jwt(const std::string& sub, const std::string& extra = "") {
    return testing::make_token(*ed_, "EdDSA", R"({"alg":"EdDSA","kid":"ed"})",
                               R"({"iss":"https://idp.example","aud":"gerbang","sub":")" + sub + R"(","exp":)" +
                                   std::to_string(kNow + 60) + extra + "}");
  }

  testing::TempDir dir_;
  authn::NewApiKey key_, other_key_;
  std::vector<ConsumerConfig> consumers_;
  AuthConfig auth_;
  IdentityConfig identity_;
  RoutePolicyConfig route_;
  std::list<std::vector<std::pair<std::string, std::string>>> owned_;
  std::list<std::vector<HeaderField>> fields_;
  std::unique_ptr<testing::TestKey> ed_;
};

TEST_F(Authn, MapsClientCertificatesBySubjectSanOrFingerprint) {
  auto set = build(route({"mtls"}));
  PeerCertificate cert;
  cert.subject = "CN=dinkes-app,OU=dinkes";
  cert.fingerprint_sha256 = std::string(64, 'b');
  auto c = ctx();
  c.request.client_cert = &cert;
  ASSERT_TRUE(run(*set, c).is_next());
  EXPECT_EQ(c.principal.consumer, "dinkes-app");
  EXPECT_EQ(c.principal.method, AuthMethod::mtls);
  EXPECT_EQ(c.principal.credential_id, std::string(64, 'b'));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Consumer: dinkes-app\r\n"));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Groups: dinkes,internal\r\n"));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Department: Dinas Kesehatan\r\n"));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Auth-Method: mtls\r\n"));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Client-Cert-SHA256: " + std::string(64, 'b') + "\r\n"));
  EXPECT_THAT(c.upstream_headers, Not(HasSubstr("Signature")));

  PeerCertificate by_uri;
  by_uri.subject = "CN=whatever";
  by_uri.uris = {"spiffe://other", "spiffe://kota/partner"};
  auto c2 = ctx();
  c2.request.client_cert = &by_uri;
  ASSERT_TRUE(run(*set, c2).is_next());
  EXPECT_EQ(c2.principal.consumer, "partner");

  PeerCertificate by_fp;
  by_fp.subject = "CN=x";
  by_fp.fingerprint_sha256 = std::string(64, 'a');
  auto c3 = ctx();
  c3.request.client_cert = &by_fp;
  ASSERT_TRUE(run(*set, c3).is_next());
  EXPECT_EQ(c3.principal.consumer, "partner");
}

TEST_F(Authn, MtlsMatchNeedsEveryGivenField) {
  auto set = build(route({"mtls"}));
  PeerCertificate cert;
  cert.subject = "CN=strict";
  auto c = ctx();
  c.request.client_cert = &cert;
  auto v = run(*set, c);
  EXPECT_EQ(v.reason, Reason::authn_invalid_credential);
  EXPECT_EQ(c.deny_detail, "mtls: the client certificate maps to no consumer");
  cert.uris = {"spiffe://kota/strict"};
  auto c2 = ctx();
  c2.request.client_cert = &cert;
  ASSERT_TRUE(run(*set, c2).is_next());
  EXPECT_EQ(c2.principal.consumer, "strict");
}

TEST_F(Authn, MtlsOnlyRouteWithoutCertificateIsMissingWithoutChallenge) {
  auto set = build(route({"mtls"}));
  auto c = ctx();
  auto v = run(*set, c);
  EXPECT_EQ(v.action, Verdict::Action::respond);
  EXPECT_EQ(v.reason, Reason::authn_missing_credential);
  EXPECT_EQ(info(v.reason).status, 401u);
  EXPECT_EQ(to_string(v.reason), "authn.missing_credential");
  EXPECT_EQ(v.headers, "");
}

TEST_F(Authn, ApiKeysGoodBadUnknownAndWrongSecret) {
  auto set = build(route({"api_key"}));
  auto c = ctx({{"X-API-Key", key_.key()}});
  ASSERT_TRUE(run(*set, c).is_next());
  EXPECT_EQ(c.principal.consumer, "dinkes-app");
  EXPECT_EQ(c.principal.method, AuthMethod::api_key);
  EXPECT_EQ(c.principal.credential_id, key_.id);
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Auth-Method: api_key\r\n"));
  EXPECT_THAT(c.upstream_headers, Not(HasSubstr("Client-Cert")));

  // Header names are case-insensitive.
  auto c1 = ctx({{"x-api-key", other_key_.key()}});
  ASSERT_TRUE(run(*set, c1).is_next());
  EXPECT_EQ(c1.principal.consumer, "partner");

  struct Case {
    std::string key;
    std::string why;
  };
  const std::string wrong_secret = key_.id + "." + other_key_.secret;
  const std::string unknown = "0123456789abcdef." + key_.secret;
  for (const auto& k : {Case{wrong_secret, "api_key: wrong secret"}, Case{unknown, "api_key: unknown key id"},
                        Case{"garbage", "api_key: malformed key"}, Case{key_.key() + "x", "api_key: malformed key"},
                        Case{key_.id + "." + key_.secret.substr(1) + "A", "api_key: wrong secret"}}) {
    auto cb = ctx({{"X-API-Key", k.key}});
    auto v = run(*set, cb);
    EXPECT_EQ(v.reason, Reason::authn_invalid_credential) << k.key;
    EXPECT_EQ(cb.deny_detail, k.why) << k.key;
    EXPECT_EQ(cb.principal.method, AuthMethod::none);
    EXPECT_EQ(cb.upstream_headers, "");
  }
  // Two keys: ambiguous, refused.
  auto c2 = ctx({{"X-API-Key", key_.key()}, {"X-API-Key", key_.key()}});
  EXPECT_EQ(run(*set, c2).reason, Reason::authn_invalid_credential);
}

TEST_F(Authn, ApiKeyInQueryOnlyWhenTheRouteOptsIn) {
  auto closed = build(route({"api_key"}));
  auto c = ctx({}, "/x?a=1&api_key=" + key_.key());
  std::string target = "/x?a=1&api_key=" + key_.key();
  c.request.target = target;
  auto v = run(*closed, c);
  EXPECT_EQ(v.reason, Reason::authn_missing_credential);
  EXPECT_THAT(v.headers, HasSubstr("WWW-Authenticate: ApiKey realm=\"gerbang\", header=\"X-API-Key\"\r\n"));

  auto r = route({"api_key"});
  r.auth.api_key_in_query = true;
  auto open = build(r);
  auto c2 = ctx();
  c2.request.target = target;
  ASSERT_TRUE(run(*open, c2).is_next());
  EXPECT_EQ(c2.principal.consumer, "dinkes-app");
  // Header and query together: ambiguous.
  auto c3 = ctx({{"X-API-Key", key_.key()}});
  c3.request.target = target;
  EXPECT_EQ(run(*open, c3).reason, Reason::authn_invalid_credential);
}

TEST_F(Authn, JwtMapsSubjectToConsumerAndMergesGroups) {
  auto set = build(route({"jwt"}));
  const std::string bearer = "Bearer " + jwt("user-1", R"(,"groups":["readers","partners"])");
  auto c = ctx({{"Authorization", bearer}});
  ASSERT_TRUE(run(*set, c).is_next()) << c.deny_detail;
  EXPECT_EQ(c.principal.consumer, "partner");
  EXPECT_EQ(c.principal.method, AuthMethod::jwt);
  EXPECT_THAT(c.principal.groups, ::testing::ElementsAre("partners", "readers"));
  EXPECT_THAT(c.upstream_headers, HasSubstr("X-Gerbang-Groups: partners,readers\r\n"));

  // Unknown subject: refused unless the issuer allows unknown subjects.
  auto c2 = ctx({{"Authorization", "Bearer " + jwt("stranger")}});
  auto v = run(*set, c2);
  EXPECT_EQ(v.reason, Reason::authn_invalid_credential);
  EXPECT_THAT(v.headers, HasSubstr("WWW-Authenticate: Bearer realm=\"gerbang\", error=\"invalid_token\"\r\n"));
  EXPECT_EQ(c2.deny_detail, "jwt: subject maps to no consumer");

  auth_.jwt_issuers[0].allow_unknown_subjects = true;
  auto lenient = build(route({"jwt"}));
  auto c3 = ctx({{"Authorization", "Bearer " + jwt("stranger", R"(,"groups":["g"])")}});
  ASSERT_TRUE(run(*lenient, c3).is_next());
  EXPECT_EQ(c3.principal.consumer, "jwt:stranger");
  EXPECT_THAT(c3.principal.groups, ::testing::ElementsAre("g"));
}

TEST_F(Authn, MissingCredentialChallengesEveryHttpScheme) {
  auto set = build(route({"mtls", "jwt", "api_key"}));
  auto c = ctx({{"Authorization", "Basic dXNlcjpwYXNz"}});  // another scheme is not a bearer credential
  auto v = run(*set, c);
  EXPECT_EQ(v.reason, Reason::authn_missing_credential);
  EXPECT_EQ(v.headers,
            "WWW-Authenticate: Bearer realm=\"gerbang\"\r\n"
            "WWW-Authenticate: ApiKey realm=\"gerbang\", header=\"X-API-Key\"\r\n");
}

TEST_F(Authn, FirstVerifyingMethodWinsAndInvalidIsNeverMissing) {
  auto set = build(route({"api_key", "jwt"}));
  // A bad key plus a good token: the token verifies.
  auto c = ctx({{"X-API-Key", "bad"}, {"Authorization", "Bearer " + jwt("user-1")}});
  ASSERT_TRUE(run(*set, c).is_next());
  EXPECT_EQ(c.principal.method, AuthMethod::jwt);
  // Empty bearer token is an invalid credential.
  auto c2 = ctx({{"Authorization", "Bearer"}});
  EXPECT_EQ(run(*set, c2).reason, Reason::authn_invalid_credential);
}

TEST_F(Authn, AnonymousRoutesAcceptNoCredentialButNotABadOne) {
  auto set = build(route({"api_key"}, true));
  auto c = ctx();
  ASSERT_TRUE(run(*set, c).is_next());
  EXPECT_EQ(c.principal.method, AuthMethod::anonymous);
  EXPECT_EQ(c.principal.consumer, "");
  EXPECT_EQ(c.upstream_headers, "X-Gerbang-Auth-Method: anonymous\r\n");
  auto c2 = ctx({{"X-API-Key", "nope"}});
  EXPECT_EQ(run(*set, c2).reason, Reason::authn_invalid_credential);
}

// Pulls "Name: value" out of the upstream header block.
std::string header_value(const std::string& block, std::string_view name) {
  const std::string key = std::string(name) + ": ";
  const auto p = block.find(key);
  if (p == std::string::npos) return "";
  return block.substr(p + key.size(), block.find("\r\n", p) - p - key.size());
}

TEST_F(Authn, IdentityAssertionIsSignedAndEveryFieldIsCovered) {
  const auto pair = crypto::ed25519_generate();
  // Stored as a signer key file ("PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>").
  std::vector<std::uint8_t> raw{0x01};
  raw.insert(raw.end(), pair.secret_key.data(), pair.secret_key.data() + 32);
  identity_.signing_key_file = dir_.write("id.key", "PRIVATE+KEY+gw+00000000+" + crypto::base64_encode(raw) + "\n");
  auto set = build(route({"mtls"}));
  PeerCertificate cert;
  cert.subject = "CN=dinkes-app,OU=dinkes";
  cert.fingerprint_sha256 = std::string(64, 'c');
  auto c = ctx({}, "/x?q=1");
  c.request.client_cert = &cert;
  ASSERT_TRUE(run(*set, c).is_next());

  const auto sig_header = header_value(c.upstream_headers, "X-Gerbang-Identity-Signature");
  auto parsed = authn::parse_identity_signature(sig_header);
  ASSERT_TRUE(parsed.has_value()) << sig_header;
  EXPECT_EQ(parsed->time, kNow);
  auto sig = crypto::base64_decode_exact<64>(parsed->signature_b64);
  ASSERT_TRUE(sig.has_value());

  const std::string fp(64, 'c');
  authn::IdentityFields f{"dinkes-app", "dinkes,internal", "Dinas Kesehatan", "mtls", fp, "req-1", kNow, "GET", "/x?q=1"};
  auto verifies = [&](const authn::IdentityFields& fields) {
    return crypto::verify_detached(*sig, crypto::as_bytes(authn::identity_canonical_string(fields)), pair.public_key);
  };
  EXPECT_TRUE(verifies(f)) << c.upstream_headers;
  EXPECT_EQ(header_value(c.upstream_headers, "X-Gerbang-Consumer"), f.consumer);

  const std::string other_fp(64, 'd');
  auto changed = [&](auto mutate) {
    auto g = f;
    mutate(g);
    return verifies(g);
  };
  EXPECT_FALSE(changed([](auto& g) { g.consumer = "partner"; }));
  EXPECT_FALSE(changed([](auto& g) { g.groups = "dinkes,internal,admin"; }));
  EXPECT_FALSE(changed([](auto& g) { g.department = "Disdukcapil"; }));
  EXPECT_FALSE(changed([](auto& g) { g.auth_method = "api_key"; }));
  EXPECT_FALSE(changed([&](auto& g) { g.cert_sha256 = other_fp; }));
  EXPECT_FALSE(changed([](auto& g) { g.request_id = "req-2"; }));
  EXPECT_FALSE(changed([](auto& g) { g.time = kNow + 1; }));
  EXPECT_FALSE(changed([](auto& g) { g.method = "POST"; }));
  EXPECT_FALSE(changed([](auto& g) { g.target = "/x?q=2"; }));
}

TEST_F(Authn, SigningKeyMustBePrivateAndValid) {
  identity_.signing_key_file = dir_.write("loose.key", crypto::base64_encode(std::vector<std::uint8_t>(32, 7)), 0644);
  auto r = route({"mtls"});
  route_ = r;
  PolicySet::Inputs in;
  in.consumers = &consumers_;
  in.auth = &auth_;
  in.identity = &identity_;
  in.routes = {{"r", &route_}};
  std::vector<std::string> errors;
  EXPECT_EQ(PolicySet::create(in, errors), nullptr);
  ASSERT_FALSE(errors.empty());
  EXPECT_THAT(errors.front(), HasSubstr("identity.signing_key"));
  errors.clear();
  identity_.signing_key_file = dir_.write("bad.key", "hello");
  EXPECT_EQ(PolicySet::create(in, errors), nullptr);
  errors.clear();
  identity_.signing_key_file = dir_.write("seed.key", crypto::base64_encode(std::vector<std::uint8_t>(32, 7)));
  EXPECT_NE(PolicySet::create(in, errors), nullptr);
}

TEST(ApiKeyFormat, GeneratedKeysRoundTripAndHashIsBoundToTheId) {
  ASSERT_TRUE(crypto::init_sodium());
  const auto k = authn::generate_api_key();
  EXPECT_EQ(k.id.size(), 16u);
  EXPECT_EQ(k.secret.size(), authn::api_key_secret_chars);
  const std::string full = k.key();
  auto parts = authn::split_api_key(full);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->id, k.id);
  EXPECT_TRUE(authn::parse_api_key_hash(k.hash()).has_value());
  EXPECT_NE(authn::api_key_hash_string("aaaaaaaa", k.secret), authn::api_key_hash_string("aaaaaaab", k.secret));
  EXPECT_FALSE(authn::parse_api_key_hash("blake2b:" + std::string(64, 'A')).has_value());
  EXPECT_FALSE(authn::parse_api_key_hash("$argon2id$v=19$m=65536,t=2,p=1$abc$def").has_value());
  authn::ApiKeyIndex idx;
  std::string error;
  EXPECT_TRUE(idx.add(k.id, k.hash(), 3, error));
  EXPECT_FALSE(idx.add(k.id, k.hash(), 4, error));
  EXPECT_THAT(error, HasSubstr("used twice"));
  auto r = idx.verify(full);
  EXPECT_EQ(r.outcome, authn::ApiKeyIndex::Outcome::ok);
  EXPECT_EQ(r.consumer, 3u);
}

}  // namespace
}  // namespace gerbang::policies
