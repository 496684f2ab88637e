// The loader's issue-3 sections: consumers, auth, identity, ratelimit, per-route auth/allow/rate_limits/ip,
// listener ip filters, upstream concurrency — values, defaults, positioned errors and cross-references.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/config/loader.hpp"

namespace gerbang::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PolicyConfig : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string templ = (fs::temp_directory_path() / "gerbang-config-policies-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = new fs::path(templ);
    const std::string pem = (*dir_ / "server.pem").string(), key = (*dir_ / "server.key").string();
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=s "
                            "-keyout '" + key + "' -out '" + pem + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ::chmod(key.c_str(), 0600);
    fs::copy_file(pem, *dir_ / "ca.pem");
    std::ofstream(*dir_ / "jwks.json") << R"({"keys":[]})";
    std::ofstream(*dir_ / "id.key") << "seed";
    ::chmod((*dir_ / "id.key").c_str(), 0600);
    std::ofstream(*dir_ / "loose.key") << "seed";
    ::chmod((*dir_ / "loose.key").c_str(), 0644);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }

  std::shared_ptr<const Config> load(const std::string& yaml) {
    diags_ = Diagnostics();
    return load_string(std::string(kBase) + yaml, "p.yaml", dir_->string(), diags_);
  }
  std::string errors() const { return diags_.to_string(); }
  std::string warnings() const {
    std::string s;
    for (const auto& w : diags_.warnings()) s += w.to_string() + "\n";
    return s;
  }

  // Eleven lines; whatever is appended starts on line 12.
  static constexpr const char* kBase = R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: server.pem, key: server.key }
      client_auth: optional
      client_ca: ca.pem
upstreams:
  - name: up
    targets: ["127.0.0.1:9000"]
)";

  static fs::path* dir_;
  Diagnostics diags_;
};
fs::path* PolicyConfig::dir_ = nullptr;

constexpr const char* kFull = R"(consumers:
  - id: dinkes-app
    groups: [dinkes, internal]
    department: Dinas Kesehatan
    credentials:
      mtls:
        - subject: "CN=dinkes-app,OU=dinkes"
        - san_uri: spiffe://kota/dinkes
          san_dns: app.dinkes
        - fingerprint_sha256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
        - san_email: ops@dinkes.example
      api_keys:
        - {id: 0123456789abcdef, hash: "blake2b:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}
      jwt:
        - {issuer: corp, subject: svc-dinkes}
  - id: partner
    groups: [partners]
auth:
  api_key_header: X-Key
  jwt_issuers:
    - name: corp
      issuer: https://login.kota.example
      audiences: [gerbang, api]
      jwks_file: jwks.json
      algorithms: [EdDSA, ES256]
      leeway: 10s
      max_lifetime: 1h
      max_token_bytes: 4KiB
      groups_claim: roles
      allow_unknown_subjects: true
identity:
  signing_key: id.key
ratelimit:
  backend: redis
  redis: {address: "127.0.0.1:6380", timeout: 20ms}
  on_failure: deny
  max_keys: 5000
routes:
  - name: secure
    match: {path_prefix: /secure}
    upstream: up
    auth: {methods: [mtls, jwt, api_key], anonymous: false, api_key_in_query: true}
    allow:
      - consumers: [dinkes-app]
      - groups: [partners]
        methods: [GET]
      - consumers: ["*anonymous*", "*authenticated*"]
    rate_limits:
      - {name: per-second, key: consumer, rate: 10/s, burst: 20}
      - {key: [consumer, route], rate: 1000/h}
      - {key: client_ip, rate: 5/d}
      - {rate: 100/m}
    ip:
      allow: ["10.0.0.0/8", "2001:db8::/32"]
      deny: ["10.66.0.0/16"]
)";

TEST_F(PolicyConfig, ParsesEverySection) {
  auto c = load(kFull);
  ASSERT_TRUE(c) << errors();
  EXPECT_EQ(warnings(), "");
  ASSERT_EQ(c->consumers.size(), 2u);
  const auto& d = c->consumers[0];
  EXPECT_EQ(d.id, "dinkes-app");
  EXPECT_THAT(d.groups, ElementsAre("dinkes", "internal"));
  EXPECT_EQ(d.department, "Dinas Kesehatan");
  ASSERT_EQ(d.mtls.size(), 4u);
  EXPECT_EQ(d.mtls[0].subject, "CN=dinkes-app,OU=dinkes");
  EXPECT_EQ(d.mtls[1].san_uri, "spiffe://kota/dinkes");
  EXPECT_EQ(d.mtls[1].san_dns, "app.dinkes");
  EXPECT_EQ(d.mtls[2].fingerprint_sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(d.mtls[3].san_email, "ops@dinkes.example");
  ASSERT_EQ(d.api_keys.size(), 1u);
  EXPECT_EQ(d.api_keys[0].id, "0123456789abcdef");
  ASSERT_EQ(d.jwt.size(), 1u);
  EXPECT_EQ(d.jwt[0].issuer, "corp");
  EXPECT_EQ(d.jwt[0].subject, "svc-dinkes");

  EXPECT_EQ(c->auth.api_key_header, "X-Key");
  ASSERT_EQ(c->auth.jwt_issuers.size(), 1u);
  const auto& j = c->auth.jwt_issuers[0];
  EXPECT_EQ(j.issuer, "https://login.kota.example");
  EXPECT_THAT(j.audiences, ElementsAre("gerbang", "api"));
  EXPECT_EQ(j.jwks_file, (*dir_ / "jwks.json").string());
  EXPECT_THAT(j.algorithms, ElementsAre("EdDSA", "ES256"));
  EXPECT_EQ(j.leeway, 10s);
  EXPECT_EQ(j.max_lifetime, 3600s);
  EXPECT_EQ(j.max_token_bytes, 4096u);
  EXPECT_EQ(j.groups_claim, "roles");
  EXPECT_TRUE(j.allow_unknown_subjects);
  EXPECT_EQ(c->identity.signing_key_file, (*dir_ / "id.key").string());
  using B = policies::RateLimitBackendConfig;
  EXPECT_EQ(c->ratelimit.backend, B::Backend::redis);
  EXPECT_EQ(c->ratelimit.redis_address, "127.0.0.1:6380");
  EXPECT_EQ(c->ratelimit.redis_timeout, 20ms);
  EXPECT_EQ(c->ratelimit.on_failure, B::OnFailure::deny);
  EXPECT_EQ(c->ratelimit.max_keys, 5000u);

  const auto& p = c->routes[0].policy;
  EXPECT_TRUE(p.has_auth);
  EXPECT_THAT(p.auth.methods, ElementsAre("mtls", "jwt", "api_key"));
  EXPECT_TRUE(p.auth.api_key_in_query);
  ASSERT_EQ(p.allow.size(), 3u);
  EXPECT_THAT(p.allow[1].groups, ElementsAre("partners"));
  EXPECT_THAT(p.allow[1].methods, ElementsAre("GET"));
  ASSERT_EQ(p.rate_limits.size(), 4u);
  using K = policies::RateKeyPart;
  EXPECT_EQ(p.rate_limits[0].name, "per-second");
  EXPECT_EQ(p.rate_limits[0].requests, 10u);
  EXPECT_EQ(p.rate_limits[0].period, 1s);
  EXPECT_EQ(p.rate_limits[0].burst, 20u);
  EXPECT_THAT(p.rate_limits[1].key, ElementsAre(K::consumer, K::route));
  EXPECT_EQ(p.rate_limits[1].period, 1h);
  EXPECT_EQ(p.rate_limits[1].name, "1000/h");
  EXPECT_THAT(p.rate_limits[2].key, ElementsAre(K::client_ip));
  EXPECT_EQ(p.rate_limits[2].period, 24h);
  EXPECT_THAT(p.rate_limits[3].key, ElementsAre(K::consumer));  // default key
  EXPECT_EQ(p.rate_limits[3].period, 1min);
  EXPECT_EQ(p.rate_limits[3].burst, 0u);
  ASSERT_EQ(p.ip.allow.size(), 2u);
  EXPECT_TRUE(p.ip.allow[1].v6);
  EXPECT_EQ(p.ip.allow[1].prefix, 32);
  ASSERT_EQ(p.ip.deny.size(), 1u);
}

TEST_F(PolicyConfig, DefaultsWithoutPolicySections) {
  auto c = load(R"(routes:
  - {name: r, upstream: up}
)");
  ASSERT_TRUE(c) << errors();
  const auto& p = c->routes[0].policy;
  EXPECT_FALSE(p.has_auth);
  EXPECT_TRUE(p.allow.empty());
  EXPECT_TRUE(p.ip.empty());
  EXPECT_EQ(c->auth.api_key_header, "X-API-Key");
  EXPECT_EQ(c->ratelimit.backend, policies::RateLimitBackendConfig::Backend::local);
  EXPECT_EQ(c->upstreams[0].max_concurrent, 0u);
  EXPECT_EQ(c->upstreams[0].queue_timeout, 100ms);
  EXPECT_TRUE(c->listeners[0].ip.empty());
}

TEST_F(PolicyConfig, ListenerIpAndUpstreamConcurrency) {
  diags_ = Diagnostics();
  auto c = load_string(R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls: {certificates: [{cert: server.pem, key: server.key}]}
    ip: {deny: ["192.0.2.0/24", "::ffff:198.51.100.0/120"]}
upstreams:
  - {name: up, targets: ["127.0.0.1:9000"], max_concurrent: 50, queue_timeout: 250ms}
routes:
  - {name: r, upstream: up}
)", "p.yaml", dir_->string(), diags_);
  ASSERT_TRUE(c) << errors();
  EXPECT_EQ(c->listeners[0].ip.deny.size(), 2u);
  EXPECT_EQ(c->upstreams[0].max_concurrent, 50u);
  EXPECT_EQ(c->upstreams[0].queue_timeout, 250ms);
}

TEST_F(PolicyConfig, FieldErrorsArePositioned) {
  load(R"(consumers:
  - id: Bad Id
    groups: ["a,b"]
    credentials:
      mtls:
        - {fingerprint_sha256: "xyz"}
        - {}
      api_keys:
        - {id: short, hash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA"}
      jwt:
        - {issuer: nobody, subject: s}
    extra: 1
auth:
  api_key_header: Authorization
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [], jwks_file: missing.json, algorithms: [HS256], leeway: 10m}
identity: {signing_key: loose.key}
ratelimit: {backend: memcache, redis: {address: "*:6379"}, max_keys: 5}
)");
  const auto e = errors();
  EXPECT_THAT(e, HasSubstr("p.yaml:13:9: consumers[0].id: must match [a-z0-9_.-]{1,64}, got \"Bad Id\""));
  EXPECT_THAT(e, HasSubstr("p.yaml:14:14: consumers[0].groups[0]: must not contain ','"));
  EXPECT_THAT(e, HasSubstr("consumers[0].credentials.mtls[0].fingerprint_sha256: expected a SHA-256 fingerprint"));
  EXPECT_THAT(e, HasSubstr("p.yaml:18:11: consumers[0].credentials.mtls[1]: an mtls match needs at least one of"));
  EXPECT_THAT(e, HasSubstr("consumers[0].credentials.api_keys[0].id: must match [a-z0-9]{8,32}"));
  EXPECT_THAT(e, HasSubstr("consumers[0].credentials.api_keys[0].hash: password hashes are not accepted"));
  EXPECT_THAT(e, HasSubstr("consumers[0].credentials.jwt[0].issuer: no issuer named \"nobody\""));
  EXPECT_THAT(e, HasSubstr("consumers[0]: unknown key \"extra\""));
  EXPECT_THAT(e, HasSubstr("auth.api_key_header: \"Authorization\" is reserved"));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[0].audiences: must have 1..100 audiences, got 0"));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[0].jwks_file: JWKS file"));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[0].algorithms[0]: is refused"));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[0].leeway: must be in the range 0s..5m, got \"10m\""));
  EXPECT_THAT(e, HasSubstr("identity.signing_key: "));
  EXPECT_THAT(e, HasSubstr("ratelimit.backend: expected one of local, redis, got \"memcache\""));
  EXPECT_THAT(e, HasSubstr("ratelimit.redis.address: the Redis address needs a concrete host"));
  EXPECT_THAT(e, HasSubstr("ratelimit.max_keys: must be in the range 1000..100000000, got 5"));
}

TEST_F(PolicyConfig, RouteErrors) {
  load(R"(consumers:
  - {id: a}
routes:
  - name: r1
    upstream: up
    allow: [{consumers: [a]}]
  - name: r2
    upstream: up
    auth: {methods: [jwt, mtls, jwt, saml]}
    allow:
      - {consumers: [b]}
      - {}
      - {groups: [g], methods: [get]}
    rate_limits:
      - {rate: 10/sec}
      - {rate: 0/s}
      - {rate: 10/s, key: [consumer, consumer]}
      - {rate: 10/s}
    ip: {allow: ["10.0.0.1/8"]}
  - name: r3
    upstream: up
    auth: {}
  - name: r4
    upstream: up
    auth: {methods: [mtls], api_key_in_query: true}
    allow: [{consumers: ["*authenticated*"]}]
)");
  const auto e = errors();
  EXPECT_THAT(e, HasSubstr("p.yaml:17:12: routes[0].allow: allow needs auth"));
  EXPECT_THAT(e, HasSubstr("routes[1].auth.methods[2]: \"jwt\" is listed twice"));
  EXPECT_THAT(e, HasSubstr("routes[1].auth.methods[3]: expected one of mtls, api_key, jwt, got \"saml\""));
  EXPECT_THAT(e, HasSubstr("routes[1].auth.methods: method jwt needs at least one auth.jwt_issuers[] entry"));
  EXPECT_THAT(e, HasSubstr("routes[1].allow[0].consumers[0]: no consumer with id \"b\" in consumers[]"));
  EXPECT_THAT(e, HasSubstr("routes[1].allow[1]: an allow rule needs consumers or groups"));
  EXPECT_THAT(e, HasSubstr("routes[1].allow[2].methods[0]: expected an upper-case method token"));
  EXPECT_THAT(e, HasSubstr("routes[1].rate_limits[0].rate: expected a rate like \"10/s\""));
  EXPECT_THAT(e, HasSubstr("routes[1].rate_limits[1].rate: the count must be in the range 1..1000000000"));
  EXPECT_THAT(e, HasSubstr("routes[1].rate_limits[2].key[1]: \"consumer\" is listed twice"));
  EXPECT_THAT(e, HasSubstr("routes[1].rate_limits[3]: rate limit name \"10/s\" is already used"));
  EXPECT_THAT(e, HasSubstr("routes[1].ip.allow[0]: expected a CIDR block"));
  EXPECT_THAT(e, HasSubstr("routes[2].auth: needs at least one of auth.methods"));
  EXPECT_THAT(e, HasSubstr("routes[3].auth.api_key_in_query: needs api_key in routes[3].auth.methods"));
}

TEST_F(PolicyConfig, CrossReferenceErrors) {
  load(R"(consumers:
  - id: a
    credentials:
      api_keys: [{id: abcdefgh, hash: "blake2b:0000000000000000000000000000000000000000000000000000000000000000"}]
      jwt: [{issuer: corp, subject: s}]
  - id: a
    credentials:
      api_keys: [{id: abcdefgh, hash: "blake2b:1111111111111111111111111111111111111111111111111111111111111111"}]
      jwt: [{issuer: corp, subject: s}]
auth:
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [g], jwks_file: jwks.json}
    - {name: corp, issuer: x, audiences: [g], jwks_file: jwks.json}
)");
  const auto e = errors();
  EXPECT_THAT(e, HasSubstr("consumers[1].id: duplicate consumer id \"a\", already used by consumers[0].id (line 13)"));
  EXPECT_THAT(e, HasSubstr("consumers[1].credentials.api_keys[0].id: API key id \"abcdefgh\" is already used by "
                           "consumers[0].credentials.api_keys[0].id"));
  EXPECT_THAT(e, HasSubstr("consumers[1].credentials.jwt[0].subject: subject \"s\" of issuer \"corp\" already belongs to"));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[1].name: duplicate issuer name \"corp\""));
  EXPECT_THAT(e, HasSubstr("auth.jwt_issuers[1].issuer: issuer \"x\" is already configured"));
}

TEST_F(PolicyConfig, Warnings) {
  auto c = load(R"(routes:
  - name: locked
    upstream: up
    auth: {methods: [mtls]}
  - name: open
    upstream: up
    rate_limits: [{rate: 1/s}]
ratelimit:
  redis: {address: "127.0.0.1:6379"}
)");
  ASSERT_TRUE(c) << errors();
  const auto w = warnings();
  EXPECT_THAT(w, HasSubstr("p.yaml:15:11: routes[0].auth: route \"locked\" has auth but no allow rules, so every "
                           "request is denied (default deny)"));
  EXPECT_THAT(w, HasSubstr("routes[1].rate_limits[0]: key consumer on a route without auth"));
  EXPECT_THAT(w, ::testing::Not(HasSubstr("ratelimit.redis")));  // documented settings, used once backend: redis
}

}  // namespace
}  // namespace gerbang::config
