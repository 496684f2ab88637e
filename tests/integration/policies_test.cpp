// The policy stages through the real gateway binary (issue #3): mTLS consumer mapping, API keys, JWT bearer
// tokens, 401 vs 403, the signed identity assertion, stripping of client-sent X-Gerbang-* headers, rate limits
// with their headers and recovery, IP filters (listener, route, trusted X-Forwarded-For) and the per-upstream
// concurrency limit. Expected answers follow docs/config.md ("Policies") and docs/identity-assertion.md.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>

#include <gmock/gmock.h>

#include <atomic>
#include <iostream>
#include <sstream>
#include <memory>
#include <thread>

#include "gateway_fixture.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// ---- small helpers ------------------------------------------------------------------------------------

std::string ctl_binary() { return GERBANGCTL_BINARY; }

// `gerbangctl apikey new --consumer ID`: the key printed once and its config line.
struct ApiKey {
  std::string key;   // "<id>.<secret>"
  std::string id;
  std::string secret;
  std::string hash;  // "blake2b:..."
};

::testing::AssertionResult new_api_key(const std::string& consumer, ApiKey& out) {
  auto r = run_process({ctl_binary(), "apikey", "new", "--consumer", consumer});
  if (r.exit_code != 0)
    return ::testing::AssertionFailure() << "gerbangctl apikey new exited " << r.exit_code << ": " << r.stderr_text;
  std::istringstream in(r.stdout_text);
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    std::string t = line.substr(first);
    if (t.starts_with("- {id: ")) {
      const auto hq = t.find("hash: \"");
      if (hq == std::string::npos) continue;
      const auto end = t.find('"', hq + 7);
      out.hash = t.substr(hq + 7, end - (hq + 7));
      const auto comma = t.find(',');
      if (out.id.empty()) out.id = t.substr(7, comma - 7);
    } else if (first == 2 && t.find('.') != std::string::npos && t.find(' ') == std::string::npos) {
      out.key = t;
    }
  }
  const auto dot = out.key.find('.');
  if (out.key.empty() || out.hash.empty() || dot == std::string::npos)
    return ::testing::AssertionFailure() << "cannot parse gerbangctl output:\n" << r.stdout_text;
  if (out.key.substr(0, dot) != out.id)
    return ::testing::AssertionFailure() << "key id and config line id differ:\n" << r.stdout_text;
  out.secret = out.key.substr(dot + 1);
  return ::testing::AssertionSuccess();
}

std::string consumer_yaml_api_key(const std::string& id, const std::string& groups, const ApiKey& k) {
  return "  - id: " + id + "\n    groups: " + groups + "\n    credentials:\n      api_keys:\n        - {id: " + k.id +
         ", hash: \"" + k.hash + "\"}\n";
}

// The RFC 9457 body carries the stable reason as urn:gerbang:problem:<reason>.
::testing::AssertionResult is_problem(const HttpResponse& r, unsigned status, const std::string& reason) {
  if (!r.complete) return ::testing::AssertionFailure() << "incomplete response: " << r.error;
  if (r.status != status)
    return ::testing::AssertionFailure() << "status " << r.status << ", expected " << status << "; body: " << r.body;
  if (r.header("Content-Type") != "application/problem+json")
    return ::testing::AssertionFailure() << "Content-Type is \"" << r.header("Content-Type") << "\"";
  if (r.body.find("\"type\":\"urn:gerbang:problem:" + reason + "\"") == std::string::npos)
    return ::testing::AssertionFailure() << "body does not name " << reason << ": " << r.body;
  if (r.body.find("\"request_id\":\"") == std::string::npos)
    return ::testing::AssertionFailure() << "body has no request_id: " << r.body;
  return ::testing::AssertionSuccess();
}

// ---- JWT material: real OpenSSL keys, their JWKs and a JWS signer (as in tests/unit/policies) ---------------

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string b64u(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (in.size() - i == 1) {
    const unsigned v = p[i] << 16;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    const unsigned v = (p[i] << 16) | (p[i + 1] << 8);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
  }
  return out;
}

struct JwtKey {
  bool ed25519 = true;
  std::string kid;
  PkeyPtr pkey;
};

JwtKey make_jwt_key(bool ed25519, std::string kid) {
  EVP_PKEY* k = ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519") : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (k == nullptr) throw std::runtime_error("keygen failed");
  return JwtKey{ed25519, std::move(kid), PkeyPtr(k)};
}

std::string bn_param(const EVP_PKEY* k, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) throw std::runtime_error("get_bn_param");
  std::string out(static_cast<std::size_t>(pad), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  BN_free(bn);
  return out;
}

std::string jwk(const JwtKey& key) {
  std::string body;
  if (key.ed25519) {
    std::string x(32, '\0');
    std::size_t len = 32;
    EVP_PKEY_get_raw_public_key(key.pkey.get(), reinterpret_cast<unsigned char*>(x.data()), &len);
    body = R"("kty":"OKP","crv":"Ed25519","x":")" + b64u(x) + "\"";
  } else {
    body = R"("kty":"EC","crv":"P-256","x":")" + b64u(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32)) +
           R"(","y":")" + b64u(bn_param(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + "\"";
  }
  return "{" + body + R"(,"kid":")" + key.kid + "\"}";
}

// Signs as EdDSA (Ed25519 key) or ES256 (P-256 key; DER converted to JWS r||s).
std::string jws_sign(const JwtKey& key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (EVP_DigestSignInit(md.get(), nullptr, key.ed25519 ? nullptr : EVP_sha256(), nullptr, key.pkey.get()) != 1)
    throw std::runtime_error("sign init");
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  EVP_DigestSign(md.get(), nullptr, &len, in, input.size());
  std::string sig(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) != 1)
    throw std::runtime_error("sign");
  sig.resize(len);
  if (key.ed25519) return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

std::string make_token(const JwtKey& key, const std::string& header, const std::string& payload) {
  const std::string input = b64u(header) + "." + b64u(payload);
  return input + "." + b64u(jws_sign(key, input));
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- the fixture --------------------------------------------------------------------------------------

class PoliciesTest : public GatewayTest {
 protected:
  void TearDown() override {
    if (HasFailure() && gw.pid() > 0) {
      std::cerr << "---- gateway running: " << (gw.running() ? "yes" : "NO (exited)") << "\n---- gateway stderr:\n"
                << gw.stderr_text() << "---- gateway stdout (tail):\n"
                << gw.stdout_text().substr(gw.stdout_text().size() > 4000 ? gw.stdout_text().size() - 4000 : 0);
    }
  }

  std::string mtls_listener() const {
    return "      client_auth: optional\n      client_ca: " + pki.ca_cert() + "\n";
  }

  // The last request the upstream received.
  ReceivedRequest last_upstream_request(std::size_t expected_count) {
    EXPECT_TRUE(upstream.wait_for_requests(expected_count, 5s));
    auto reqs = upstream.requests();
    if (reqs.empty()) return {};
    return reqs.back();
  }

  // Polls /metrics (bounded) until it contains `line`.
  ::testing::AssertionResult wait_for_metric(const std::string& line, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    while (true) {
      auto r = gw.admin_get("/metrics");
      last = r.body;
      if (r.status == 200 && r.body.find(line) != std::string::npos) return ::testing::AssertionSuccess();
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionFailure() << "metric line '" << line << "' not seen; last /metrics:\n" << last;
  }
};

// ---- mTLS ---------------------------------------------------------------------------------------------

TEST_F(PoliciesTest, MtlsCertificateMapsToConsumer) {
  GatewayOptions o;
  o.listener_tls = mtls_listener();
  o.top = "consumers:\n"
          "  - id: dept-app\n"
          "    groups: [dinkes, internal]\n"
          "    department: Dinas Kesehatan\n"
          "    credentials:\n"
          "      mtls:\n"
          "        - san_uri: \"spiffe://gerbang.test/client\"\n";
  o.route = "    auth:\n      methods: [mtls]\n    allow:\n      - consumers: [dept-app]\n";
  start_gateway(o);

  {
    auto c = mtls_client(pki.client());
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/records/1");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << r.body << gw.stderr_text();
    auto req = last_upstream_request(1);
    EXPECT_EQ(req.header("X-Gerbang-Consumer"), "dept-app");
    EXPECT_EQ(req.header("X-Gerbang-Auth-Method"), "mtls");
    EXPECT_EQ(req.header("X-Gerbang-Groups"), "dinkes,internal");
    EXPECT_EQ(req.header("X-Gerbang-Department"), "Dinas Kesehatan");
    EXPECT_EQ(req.header("X-Gerbang-Client-Cert-SHA256"), pki.client().sha256_fingerprint);
    EXPECT_EQ(req.header_count("X-Gerbang-Consumer"), 1u);
    EXPECT_FALSE(req.has_header("X-Gerbang-Identity-Signature")) << "no signing key configured";
  }
  {  // no certificate at all
    auto c = client();
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/records/1");
    EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential"));
    EXPECT_FALSE(r.has_header("WWW-Authenticate")) << "mTLS has no HTTP challenge (docs/config.md routes[].auth)";
  }
  {  // a valid certificate from the same CA, for an identity no consumer has: presented but not verified → 401
    certs::IssueOptions io;
    io.common_name = "other-client";
    io.organization = "gerbang-test";
    io.uris = {"spiffe://gerbang.test/other"};
    auto other = pki.issue_client("other-client", io);
    auto c = mtls_client(other);
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/records/1");
    EXPECT_TRUE(is_problem(r, 401, "authn.invalid_credential"));
  }
  EXPECT_EQ(upstream.requests().size(), 1u) << "rejected requests never reach the upstream";
}

// ---- API keys -----------------------------------------------------------------------------------------

TEST_F(PoliciesTest, ApiKeysFromGerbangctlGoodBadAndInQuery) {
  ApiKey alice;
  ASSERT_TRUE(new_api_key("alice", alice));
  GatewayOptions o;
  o.top = "consumers:\n" + consumer_yaml_api_key("alice", "[staff]", alice);
  o.route_match = "      path_prefix: /h\n";
  o.route = "    auth:\n      methods: [api_key]\n    allow:\n      - consumers: [alice]\n";
  o.extra_routes = "  - name: query\n"
                   "    match:\n      path_prefix: /q\n"
                   "    upstream: backend\n"
                   "    auth:\n      methods: [api_key]\n      api_key_in_query: true\n"
                   "    allow:\n      - consumers: [alice]\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());

  // Good key in the header.
  auto r = c.request("GET", "/h/x", {{"X-API-Key", alice.key}});
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body << gw.stderr_text();
  auto req = last_upstream_request(1);
  EXPECT_EQ(req.header("X-Gerbang-Consumer"), "alice");
  EXPECT_EQ(req.header("X-Gerbang-Auth-Method"), "api_key");
  EXPECT_EQ(req.header("X-Gerbang-Groups"), "staff");
  // docs/config.md does not say it in so many words, but gateway/headers.hpp (credential_field) drops the
  // API key header on the way to the upstream: the key is a gateway credential, not the department's.
  EXPECT_FALSE(req.has_header("X-API-Key")) << "the API key must not leak to the upstream";

  // Wrong secret (same id): 401 invalid, with the ApiKey challenge.
  std::string wrong = alice.secret;
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  r = c.request("GET", "/h/x", {{"X-API-Key", alice.id + "." + wrong}});
  EXPECT_TRUE(is_problem(r, 401, "authn.invalid_credential"));
  EXPECT_THAT(r.header("WWW-Authenticate"), HasSubstr("ApiKey realm=\"gerbang\""));

  // Unknown id (a well-formed key of its own).
  ApiKey stranger;
  ASSERT_TRUE(new_api_key("alice", stranger));
  r = c.request("GET", "/h/x", {{"X-API-Key", stranger.key}});
  EXPECT_TRUE(is_problem(r, 401, "authn.invalid_credential"));

  // No key: 401 missing, with the challenge naming the header.
  r = c.request("GET", "/h/x");
  EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential"));
  EXPECT_EQ(r.header("WWW-Authenticate"), "ApiKey realm=\"gerbang\", header=\"X-API-Key\"");

  // The key in the query on a route that did not opt in is no credential at all.
  r = c.request("GET", "/h/x?api_key=" + alice.key);
  EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential"));

  // The route that opted in accepts it.
  r = c.request("GET", "/q/x?api_key=" + alice.key);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  req = last_upstream_request(2);
  EXPECT_EQ(req.header("X-Gerbang-Consumer"), "alice");
  // ...and a key in both header and query is ambiguous, so invalid.
  r = c.request("GET", "/q/x?api_key=" + alice.key, {{"X-API-Key", alice.key}});
  EXPECT_TRUE(is_problem(r, 401, "authn.invalid_credential"));
  EXPECT_EQ(upstream.requests().size(), 2u);
}

// ---- JWT ----------------------------------------------------------------------------------------------

class PoliciesJwtTest : public PoliciesTest {
 protected:
  void SetUp() override {
    ed_ = make_jwt_key(true, "ed-1");
    ec_ = make_jwt_key(false, "ec-1");
    const std::string jwks = R"({"keys":[)" + jwk(ed_) + "," + jwk(ec_) + "]}";
    const std::string jwks_path = gw.write_file("jwks.json", jwks);
    GatewayOptions o;
    o.top = "auth:\n"
            "  jwt_issuers:\n"
            "    - name: idp\n"
            "      issuer: \"https://idp.gerbang.test\"\n"
            "      audiences: [gerbang-api]\n"
            "      jwks_file: " + jwks_path + "\n"
            "consumers:\n"
            "  - id: portal\n"
            "    groups: [public-apps]\n"
            "    credentials:\n"
            "      jwt:\n"
            "        - {issuer: idp, subject: portal-app}\n";
    o.route = "    auth:\n      methods: [jwt]\n    allow:\n      - groups: [citizens]\n";
    start_gateway(o);
  }

  static std::string header(const std::string& alg, const std::string& kid) {
    return R"({"alg":")" + alg + R"(","kid":")" + kid + R"(","typ":"JWT"})";
  }
  static std::string claims(std::int64_t exp_offset = 600, const std::string& aud = "gerbang-api",
                            const std::string& groups = R"(["citizens"])") {
    const auto now = unix_now();
    return R"({"iss":"https://idp.gerbang.test","aud":")" + aud + R"(","sub":"portal-app","iat":)" +
           std::to_string(now - 10) + R"(,"exp":)" + std::to_string(now + exp_offset) + R"(,"groups":)" + groups +
           "}";
  }
  HttpResponse call(TlsClient& c, const std::string& token) {
    return c.request("GET", "/data", {{"Authorization", "Bearer " + token}});
  }
  ::testing::AssertionResult invalid_token(const HttpResponse& r) {
    auto p = is_problem(r, 401, "authn.invalid_credential");
    if (!p) return p;
    const auto www = r.header("WWW-Authenticate");
    if (www.find("Bearer") == std::string::npos || www.find("error=\"invalid_token\"") == std::string::npos)
      return ::testing::AssertionFailure() << "WWW-Authenticate is \"" << www << "\"";
    return ::testing::AssertionSuccess();
  }

  JwtKey ed_, ec_;
};

TEST_F(PoliciesJwtTest, GoodTokensPassWithGroupsMapped) {
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = call(c, make_token(ed_, header("EdDSA", "ed-1"), claims()));
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body << gw.stderr_text();
  auto req = last_upstream_request(1);
  EXPECT_EQ(req.header("X-Gerbang-Consumer"), "portal");
  EXPECT_EQ(req.header("X-Gerbang-Auth-Method"), "jwt");
  EXPECT_EQ(req.header("X-Gerbang-Groups"), "public-apps,citizens") << "consumer groups, then the token's groups claim";

  r = call(c, make_token(ec_, header("ES256", "ec-1"), claims()));
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  req = last_upstream_request(2);
  EXPECT_EQ(req.header("X-Gerbang-Consumer"), "portal");

  // Valid token, but without the group the allow rule names: authenticated, not allowed → 403.
  r = call(c, make_token(ed_, header("EdDSA", "ed-1"), claims(600, "gerbang-api", R"(["tourists"])")));
  EXPECT_TRUE(is_problem(r, 403, "authz.denied"));
  EXPECT_FALSE(r.has_header("WWW-Authenticate"));

  // No token: 401 missing with the plain Bearer challenge.
  r = c.request("GET", "/data");
  EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential"));
  EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer realm=\"gerbang\"");
}

TEST_F(PoliciesJwtTest, BadTokensAre401InvalidToken) {
  auto c = client();
  ASSERT_TRUE(c.connect());
  // Expired an hour ago (well beyond the 30 s leeway).
  EXPECT_TRUE(invalid_token(call(c, make_token(ed_, header("EdDSA", "ed-1"), claims(-3600)))));
  // Wrong audience.
  EXPECT_TRUE(invalid_token(call(c, make_token(ed_, header("EdDSA", "ed-1"), claims(600, "someone-else")))));
  // alg none, empty signature.
  EXPECT_TRUE(invalid_token(call(c, b64u(R"({"alg":"none","kid":"ed-1","typ":"JWT"})") + "." + b64u(claims()) + ".")));
  // alg none with some signature bytes.
  EXPECT_TRUE(invalid_token(call(c, b64u(R"({"alg":"none","kid":"ed-1","typ":"JWT"})") + "." + b64u(claims()) + "." +
                                        b64u("x"))));
  // Bad signature: signed by another Ed25519 key that claims kid ed-1.
  const JwtKey impostor = make_jwt_key(true, "ed-1");
  EXPECT_TRUE(invalid_token(call(c, make_token(impostor, header("EdDSA", "ed-1"), claims()))));
  // Bad signature: the payload changed after signing.
  {
    const std::string good = make_token(ed_, header("EdDSA", "ed-1"), claims());
    const auto d1 = good.find('.'), d2 = good.find('.', d1 + 1);
    const std::string forged = good.substr(0, d1 + 1) +
                               b64u(claims(600, "gerbang-api", R"(["citizens","admins"])")) + good.substr(d2);
    EXPECT_TRUE(invalid_token(call(c, forged)));
  }
  // Unknown kid.
  EXPECT_TRUE(invalid_token(call(c, make_token(ed_, header("EdDSA", "no-such-kid"), claims()))));
  // Algorithm that does not fit the key named by kid (ES256 header on the Ed25519 key).
  EXPECT_TRUE(invalid_token(call(c, make_token(ec_, header("ES256", "ed-1"), claims()))));
  EXPECT_EQ(upstream.requests().size(), 0u) << "no bad token reaches the upstream";
}

// ---- 401 vs 403, allow rules --------------------------------------------------------------------------

TEST_F(PoliciesTest, AuthenticatedButNotAllowedIs403AndAllowRulesMatchGroupsAndMethods) {
  ApiKey alice, bob, carol;
  ASSERT_TRUE(new_api_key("alice", alice));
  ASSERT_TRUE(new_api_key("bob", bob));
  ASSERT_TRUE(new_api_key("carol", carol));
  GatewayOptions o;
  o.top = "consumers:\n" + consumer_yaml_api_key("alice", "[staff]", alice) +
          consumer_yaml_api_key("bob", "[guests]", bob) + consumer_yaml_api_key("carol", "[auditors]", carol);
  o.route = "    auth:\n      methods: [api_key]\n"
            "    allow:\n"
            "      - groups: [staff]\n"
            "      - consumers: [carol]\n        methods: [GET, HEAD]\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());

  auto r = c.request("GET", "/x", {{"X-API-Key", bob.key}});
  EXPECT_TRUE(is_problem(r, 403, "authz.denied")) << "bob is authenticated but no rule admits him";
  EXPECT_FALSE(r.has_header("WWW-Authenticate"));

  r = c.request("POST", "/x", {{"X-API-Key", alice.key}}, "payload");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << "alice's group staff is allowed every method; " << r.body;

  r = c.request("GET", "/x", {{"X-API-Key", carol.key}});
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << "carol may GET; " << r.body;

  r = c.request("DELETE", "/x", {{"X-API-Key", carol.key}});
  EXPECT_TRUE(is_problem(r, 403, "authz.denied")) << "carol's rule admits only GET and HEAD";

  // A denied request with an unread body closes the connection (the body would be taken for the next
  // request), so this one goes last on its own connection.
  {
    auto c2 = client();
    ASSERT_TRUE(c2.connect());
    r = c2.request("POST", "/x", {{"X-API-Key", carol.key}}, "payload");
    EXPECT_TRUE(is_problem(r, 403, "authz.denied")) << "carol's rule admits only GET and HEAD";
  }

  r = c.request("GET", "/x");
  EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential")) << "no credential is 401, not 403";

  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  EXPECT_EQ(upstream.requests().size(), 2u);
  EXPECT_TRUE(wait_for_metric("gerbang_rejections_total{reason=\"authz.denied\"} 3"));
}

// ---- signed identity assertion ------------------------------------------------------------------------

TEST_F(PoliciesTest, IdentitySignatureVerifiesWithGerbangctlAndTamperingIsDetected) {
  const std::string key_file = gw.dir() + "/identity.key";
  auto gen = run_process({ctl_binary(), "keys", "generate", "--out", key_file, "--name", "gerbang-identity"});
  ASSERT_EQ(gen.exit_code, 0) << gen.stderr_text;
  std::string verifier = gen.stdout_text;
  while (!verifier.empty() && (verifier.back() == '\n' || verifier.back() == '\r')) verifier.pop_back();
  ASSERT_THAT(verifier, HasSubstr("gerbang-identity+"));

  GatewayOptions o;
  o.listener_tls = mtls_listener();
  o.top = "identity:\n  signing_key: " + key_file + "\n"
          "consumers:\n"
          "  - id: dept-app\n"
          "    groups: [dinkes, internal]\n"
          "    department: Dinas Kesehatan\n"
          "    credentials:\n"
          "      mtls:\n"
          "        - san_uri: \"spiffe://gerbang.test/client\"\n";
  o.route = "    auth:\n      methods: [mtls]\n    allow:\n      - consumers: [dept-app]\n";
  start_gateway(o);

  auto c = mtls_client(pki.client());
  ASSERT_TRUE(c.connect());
  const std::string target = "/api/pasien/123?view=summary";
  auto r = c.request("GET", target);
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_EQ(r.status, 200u) << r.body << gw.stderr_text();
  auto req = last_upstream_request(1);
  const std::string sig = req.header("X-Gerbang-Identity-Signature");
  EXPECT_THAT(sig, ::testing::MatchesRegex("t=[0-9]+; ed25519=[A-Za-z0-9+/=]+"));
  ASSERT_FALSE(req.header("X-Request-Id").empty());

  // The head as the upstream received it: request line, then every header.
  auto dump = [&](const std::string& consumer_override) {
    std::string text = req.method + " " + req.target + " HTTP/1.1\r\n";
    for (const auto& [name, value] : req.headers) {
      const bool is_consumer = iequals(name, "X-Gerbang-Consumer");
      text += name + ": " + (is_consumer && !consumer_override.empty() ? consumer_override : value) + "\r\n";
    }
    return text + "\r\n";
  };
  EXPECT_EQ(req.target, target);
  TempDir files("gerbang-identity");
  const std::string good = files.write("good.txt", dump(""));
  auto v = run_process({ctl_binary(), "identity", "verify", "--key", verifier, "--headers", good, "--max-age", "60"});
  EXPECT_EQ(v.exit_code, 0) << v.stdout_text << v.stderr_text;
  EXPECT_THAT(v.stdout_text, HasSubstr("identity assertion OK"));
  EXPECT_THAT(v.stdout_text, HasSubstr("dept-app"));

  // One identity header changed: the signature no longer holds.
  const std::string tampered = files.write("tampered.txt", dump("admin"));
  v = run_process({ctl_binary(), "identity", "verify", "--key", verifier, "--headers", tampered});
  EXPECT_NE(v.exit_code, 0) << v.stdout_text;
  // The same headers presented for another request target: not valid either.
  v = run_process({ctl_binary(), "identity", "verify", "--key", verifier, "--headers", good, "--target", "/api/pasien/999"});
  EXPECT_NE(v.exit_code, 0) << v.stdout_text;
  // Another key: not valid.
  const std::string other_key = files.file("other.key");
  auto gen2 = run_process({ctl_binary(), "keys", "generate", "--out", other_key, "--name", "gerbang-identity"});
  ASSERT_EQ(gen2.exit_code, 0) << gen2.stderr_text;
  std::string other_verifier = gen2.stdout_text;
  while (!other_verifier.empty() && other_verifier.back() == '\n') other_verifier.pop_back();
  v = run_process({ctl_binary(), "identity", "verify", "--key", other_verifier, "--headers", good});
  EXPECT_NE(v.exit_code, 0) << v.stdout_text;
}

// ---- client-sent X-Gerbang-* headers ------------------------------------------------------------------

TEST_F(PoliciesTest, ClientSuppliedIdentityHeadersAreStrippedAndDoNotAuthenticate) {
  ApiKey alice, admin;
  ASSERT_TRUE(new_api_key("alice", alice));
  ASSERT_TRUE(new_api_key("admin", admin));
  GatewayOptions o;
  o.top = "consumers:\n" + consumer_yaml_api_key("alice", "[staff]", alice) +
          consumer_yaml_api_key("admin", "[admins]", admin);
  o.route_match = "      path_prefix: /admin\n";
  o.route = "    auth:\n      methods: [api_key]\n    allow:\n      - consumers: [admin]\n";
  o.extra_routes = "  - name: staff\n    match:\n      path_prefix: /staff\n    upstream: backend\n"
                   "    auth:\n      methods: [api_key]\n    allow:\n      - groups: [staff]\n"
                   "  - name: open\n    match:\n      path_prefix: /\n    upstream: backend\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  const HeaderList spoof = {{"X-Gerbang-Consumer", "admin"},
                            {"X-Gerbang-Groups", "admins"},
                            {"X-Gerbang-Auth-Method", "mtls"},
                            {"x-gerbang-department", "IT"}};

  // On a protected route, the spoofed headers are no credential.
  auto r = c.request("GET", "/admin/users", spoof);
  EXPECT_TRUE(is_problem(r, 401, "authn.missing_credential"));
  // Alice's own key plus the spoofed headers: she is still alice, and still not allowed.
  HeaderList with_key = spoof;
  with_key.emplace_back("X-API-Key", alice.key);
  r = c.request("GET", "/admin/users", with_key);
  EXPECT_TRUE(is_problem(r, 403, "authz.denied"));

  // On an open route the spoofed headers are removed before forwarding.
  r = c.request("GET", "/public", spoof);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  auto req = last_upstream_request(1);
  for (const auto& [name, value] : req.headers)
    EXPECT_FALSE(name.size() >= 10 && iequals(name.substr(0, 10), "X-Gerbang-")) << name << ": " << value;
  EXPECT_THAT(r.body, Not(HasSubstr("admin")));

  // Authenticated as alice on /staff with spoofed headers: exactly one, true, copy of each.
  r = c.request("GET", "/staff/x", with_key);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  req = last_upstream_request(2);
  EXPECT_EQ(req.header_values("X-Gerbang-Consumer"), std::vector<std::string>{"alice"});
  EXPECT_EQ(req.header_values("X-Gerbang-Groups"), std::vector<std::string>{"staff"});
  EXPECT_EQ(req.header_values("X-Gerbang-Auth-Method"), std::vector<std::string>{"api_key"});
  EXPECT_EQ(req.header_count("X-Gerbang-Department"), 0u) << "alice has no department; the client's copy is gone";
  EXPECT_EQ(upstream.requests().size(), 2u);
}

// ---- rate limits --------------------------------------------------------------------------------------

TEST_F(PoliciesTest, RateLimitAnswers429WithHeadersAndRecoversAfterRetryAfter) {
  GatewayOptions o;
  o.route = "    rate_limits:\n      - {name: per-ip, key: client_ip, rate: \"5/s\", burst: 5}\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());

  // Five quick requests pass (the bucket holds 5) and carry the RateLimit headers.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    auto r = c.request("GET", "/r" + std::to_string(i));
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << "request " << i << ": " << r.body;
    EXPECT_EQ(r.header("RateLimit-Policy"), "\"per-ip\";q=5;w=1");
    EXPECT_THAT(r.header("RateLimit"), ::testing::MatchesRegex("\"per-ip\";r=[0-9]+;t=[0-9]+"));
  }
  // The sixth is over the limit (one token refills every 200 ms; if the machine was so slow that a token came
  // back meanwhile, the request after that is the one refused).
  HttpResponse r = c.request("GET", "/r5");
  int extra = 0;
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  while (r.status == 200 && extra < 5) {
    ASSERT_GT(elapsed, 150ms) << "the 6th quick request passed the 5/s, burst 5 limit";
    r = c.request("GET", "/r-extra");
    ++extra;
  }
  ASSERT_TRUE(is_problem(r, 429, "ratelimit.exceeded"));
  const std::string retry_after = r.header("Retry-After");
  EXPECT_EQ(retry_after, "1");
  EXPECT_EQ(r.header("RateLimit-Policy"), "\"per-ip\";q=5;w=1");
  EXPECT_THAT(r.header("RateLimit"), ::testing::MatchesRegex("\"per-ip\";r=0;t=[0-9]+"));
  const auto forwarded = upstream.requests().size();

  // Another one right away is still refused.
  auto r2 = c.request("GET", "/again");
  EXPECT_TRUE(is_problem(r2, 429, "ratelimit.exceeded"));

  // After Retry-After seconds the limit lets requests through again.
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(retry_after.empty() ? "1" : retry_after)) + 50ms);
  auto r3 = c.request("GET", "/recovered");
  ASSERT_TRUE(r3.complete) << r3.error;
  EXPECT_EQ(r3.status, 200u) << r3.body;
  EXPECT_TRUE(r3.has_header("RateLimit"));
  ASSERT_TRUE(upstream.wait_for_requests(forwarded + 1, 5s));

  EXPECT_TRUE(wait_for_metric("gerbang_rejections_total{reason=\"ratelimit.exceeded\"} 2"));
}

// ---- IP filters ---------------------------------------------------------------------------------------

TEST_F(PoliciesTest, RouteIpDenyIs403) {
  GatewayOptions o;
  o.route_match = "      path_prefix: /closed\n";
  o.route = "    ip:\n      deny: [\"127.0.0.1/32\"]\n";
  o.extra_routes = "  - name: open\n    match:\n      path_prefix: /\n    upstream: backend\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/closed/x");
  EXPECT_TRUE(is_problem(r, 403, "ipfilter.denied"));
  r = c.request("GET", "/open");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << "the filter belongs to the other route";
  EXPECT_EQ(upstream.requests().size(), 1u);
  EXPECT_TRUE(wait_for_metric("gerbang_rejections_total{reason=\"ipfilter.denied\"} 1"));
}

TEST_F(PoliciesTest, ListenerIpAllowListRefusesOtherClients) {
  GatewayOptions o;
  o.listener = "    ip:\n      allow: [\"10.0.0.0/8\"]\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/anything");
  EXPECT_TRUE(is_problem(r, 403, "ipfilter.denied"));
  EXPECT_EQ(upstream.requests().size(), 0u);
}

TEST_F(PoliciesTest, TrustedProxyXForwardedForDecidesTheClientAddress) {
  GatewayOptions o;
  o.top = "trusted_proxies: [\"127.0.0.0/8\"]\n";
  o.route = "    ip:\n      allow: [\"203.0.113.0/24\"]\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/x", {{"X-Forwarded-For", "203.0.113.7"}});
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body << gw.stderr_text();
  r = c.request("GET", "/x", {{"X-Forwarded-For", "198.51.100.1"}});
  EXPECT_TRUE(is_problem(r, 403, "ipfilter.denied"));
  r = c.request("GET", "/x");
  EXPECT_TRUE(is_problem(r, 403, "ipfilter.denied")) << "without X-Forwarded-For the client is 127.0.0.1";
  EXPECT_EQ(upstream.requests().size(), 1u);
}

TEST_F(PoliciesTest, XForwardedForFromAnUntrustedPeerIsIgnored) {
  GatewayOptions o;  // no trusted_proxies
  o.route = "    ip:\n      allow: [\"203.0.113.0/24\"]\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/x", {{"X-Forwarded-For", "203.0.113.7"}});
  EXPECT_TRUE(is_problem(r, 403, "ipfilter.denied"));
  EXPECT_EQ(upstream.requests().size(), 0u);
}

// ---- per-upstream concurrency limit -------------------------------------------------------------------

TEST_F(PoliciesTest, UpstreamConcurrencyLimitQueuesBrieflyThen503) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (auto req = conn.read_request(10s)) {
      conn.sleep(1s);
      if (conn.stopping() || !conn.write_response(200, "slow")) return;
    }
  });
  GatewayOptions o;
  o.upstream = "    max_concurrent: 1\n    queue_timeout: 200ms\n";
  start_gateway(o);

  std::atomic<unsigned> first_status{0};
  std::thread first([&] {
    auto c = client();
    if (!c.connect()) return;
    auto r = c.request("GET", "/first", {}, {}, 10s);
    first_status = r.status;
  });
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));

  auto c2 = client();
  ASSERT_TRUE(c2.connect());
  const auto t0 = std::chrono::steady_clock::now();
  auto r2 = c2.request("GET", "/second", {}, {}, 10s);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(is_problem(r2, 503, "upstream.concurrency_limit"));
  EXPECT_GE(waited, 180ms) << "it queued for queue_timeout first";
  EXPECT_LT(waited, 900ms) << "it did not wait for the slot to be freed";

  first.join();
  EXPECT_EQ(first_status.load(), 200u);

  // The slot is free again: a third request passes.
  auto c3 = client();
  ASSERT_TRUE(c3.connect());
  auto r3 = c3.request("GET", "/third", {}, {}, 10s);
  ASSERT_TRUE(r3.complete) << r3.error;
  EXPECT_EQ(r3.status, 200u) << r3.body;
  auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/first");
  EXPECT_EQ(reqs[1].target, "/third");
  EXPECT_TRUE(wait_for_metric("gerbang_rejections_total{reason=\"upstream.concurrency_limit\"} 1"));
}

}  // namespace
}  // namespace gerbang::testing
