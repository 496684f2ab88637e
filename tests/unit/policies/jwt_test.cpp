// JWT verification: every algorithm with real keys, and the edge cases of issue #3 (expiry, audience, issuer,
// algorithm confusion, unknown kid, crit, size, malformed encodings).
#include "policies/authn/jwt.hpp"

#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "crypto/sodium.hpp"
#include "jwt_test_keys.hpp"

namespace gerbang::policies::authn {
namespace {

using namespace std::chrono_literals;
using testing::KeyKind;
using testing::TestKey;
using ::testing::HasSubstr;

constexpr std::int64_t kNow = 1'800'000'000;
const auto kNowTp = std::chrono::system_clock::time_point{std::chrono::seconds{kNow}};

class Jwt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(crypto::init_sodium());
    dir_ = new testing::TempDir();
    keys_ = new std::vector<TestKey>();
    keys_->push_back(testing::make_key(KeyKind::ed25519, "ed"));
    keys_->push_back(testing::make_key(KeyKind::p256, "p256"));
    keys_->push_back(testing::make_key(KeyKind::p384, "p384"));
    keys_->push_back(testing::make_key(KeyKind::rsa, "rsa"));
    std::string jwks = R"({"keys":[)";
    for (std::size_t i = 0; i < keys_->size(); ++i) jwks += (i ? "," : "") + testing::jwk((*keys_)[i]);
    jwks += "]}";
    jwks_path_ = new std::string(dir_->write("jwks.json", jwks, 0644));
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete dir_;
    delete jwks_path_;
  }

  static const TestKey& key(KeyKind k) { return (*keys_)[static_cast<std::size_t>(k)]; }

  static JwtIssuerConfig issuer_config() {
    JwtIssuerConfig c;
    c.name = "idp";
    c.issuer = "https://idp.example";
    c.audiences = {"gerbang", "other"};
    c.jwks_file = *jwks_path_;
    return c;
  }

  std::unique_ptr<JwtAuthenticator> build(JwtIssuerConfig c = issuer_config()) {
    std::vector<std::string> errors;
    auto a = JwtAuthenticator::create({c}, errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    return a;
  }

  static std::string header(std::string_view alg, std::string_view kid, const std::string& extra = "") {
    return R"({"alg":")" + std::string(alg) + R"(","kid":")" + std::string(kid) + R"(","typ":"JWT")" + extra + "}";
  }
  static std::string claims(const std::string& extra = "", std::int64_t exp = kNow + 600) {
    return R"({"iss":"https://idp.example","aud":"gerbang","sub":"user-1","iat":)" + std::to_string(kNow - 10) +
           R"(,"exp":)" + std::to_string(exp) + extra + "}";
  }

  // Verifies and returns "" on success, else the failure reason.
  std::string check(const std::string& token, const JwtAuthenticator& a) {
    std::string_view why;
    auto v = a.verify(token, kNowTp, why);
    if (v) return "";
    return std::string(why.empty() ? "(no reason)" : why);
  }

  static testing::TempDir* dir_;
  static std::vector<TestKey>* keys_;
  static std::string* jwks_path_;
};
testing::TempDir* Jwt::dir_ = nullptr;
std::vector<TestKey>* Jwt::keys_ = nullptr;
std::string* Jwt::jwks_path_ = nullptr;

struct AlgCase {
  const char* alg;
  KeyKind kind;
  const char* kid;
};

TEST_F(Jwt, AcceptsEveryAlgorithmWithItsKey) {
  auto a = build();
  for (const auto& c : {AlgCase{"EdDSA", KeyKind::ed25519, "ed"}, AlgCase{"ES256", KeyKind::p256, "p256"},
                        AlgCase{"ES384", KeyKind::p384, "p384"}, AlgCase{"RS256", KeyKind::rsa, "rsa"},
                        AlgCase{"PS256", KeyKind::rsa, "rsa"}}) {
    const auto token = testing::make_token(key(c.kind), c.alg, header(c.alg, c.kid), claims(R"(,"groups":["a","b"])"));
    std::string_view why;
    auto v = a->verify(token, kNowTp, why);
    ASSERT_TRUE(v.has_value()) << c.alg << ": " << why;
    EXPECT_EQ(v->subject, "user-1");
    EXPECT_THAT(v->groups, ::testing::ElementsAre("a", "b"));
    EXPECT_EQ(v->issuer, 0u);
  }
}

TEST_F(Jwt, ChecksExpiryWithLeeway) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  EXPECT_EQ(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims("", kNow - 10)), *a), "");
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims("", kNow - 31)), *a),
              HasSubstr("expired"));
}

// The verified-token cache answers a repeated token only while its time window holds, never a changed token,
// and stays bounded.
TEST_F(Jwt, CacheAnswersARepeatedTokenOnlyInsideItsWindow) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  const auto token = testing::make_token(k, "EdDSA", header("EdDSA", "ed"),
                                         claims(R"(,"nbf":)" + std::to_string(kNow + 20)));  // window kNow-10..+630
  auto at = [&](std::int64_t t) {
    std::string_view why;
    auto v = a->verify(token, std::chrono::system_clock::time_point{std::chrono::seconds{t}}, why);
    return v ? std::string() : std::string(why);
  };
  EXPECT_EQ(a->cached_tokens(), 0u);
  EXPECT_EQ(at(kNow), "");
  EXPECT_EQ(a->cached_tokens(), 1u);
  EXPECT_EQ(at(kNow + 1), "");
  EXPECT_EQ(at(kNow + 630), "");
  EXPECT_THAT(at(kNow + 631), HasSubstr("expired"));  // cached, but past exp + leeway
  EXPECT_EQ(at(kNow), "");                             // verified again from scratch
  EXPECT_THAT(at(kNow - 11), HasSubstr("nbf"));         // before nbf - leeway
  // One changed byte is another token: full verification, and it fails.
  std::string forged = token;
  forged[forged.size() - 2] = forged[forged.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_THAT(check(forged, *a), HasSubstr("jwt:"));
  EXPECT_EQ(at(kNow), "");
}

TEST_F(Jwt, CacheIsBounded) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  for (int i = 0; i < 4200; ++i) {
    const auto token = testing::make_token(k, "EdDSA", header("EdDSA", "ed"),
                                           claims(R"(,"jti":")" + std::to_string(i) + "\"", kNow + 60 + i));
    ASSERT_EQ(check(token, *a), "") << i;
  }
  EXPECT_LE(a->cached_tokens(), 4096u);
  EXPECT_GE(a->cached_tokens(), 3000u);  // shards fill unevenly, but most of it is used
}

// Many workers share one authenticator: concurrent hits, misses, inserts and evictions (run under TSan by
// scripts/test-sanitizers / test-tsan).
TEST_F(Jwt, CacheIsSafeFromManyThreads) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  std::vector<std::string> tokens;
  for (int i = 0; i < 300; ++i) {
    tokens.push_back(testing::make_token(k, "EdDSA", header("EdDSA", "ed"),
                                         claims(R"(,"jti":")" + std::to_string(i) + "\"")));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          std::string_view why;
          if (!a->verify(tokens[(i * 7 + static_cast<std::size_t>(t) * 31) % tokens.size()], kNowTp, why)) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(a->cached_tokens(), tokens.size());
}

TEST_F(Jwt, RejectsMissingExp) {
  auto a = build();
  const auto payload = R"({"iss":"https://idp.example","aud":"gerbang","sub":"u"})";
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed"), payload), *a),
              HasSubstr("exp missing"));
}

TEST_F(Jwt, RejectsNotYetValidAndFutureIat) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims(R"(,"nbf":)" + std::to_string(kNow + 100))), *a),
              HasSubstr("nbf"));
  EXPECT_EQ(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims(R"(,"nbf":)" + std::to_string(kNow + 20))), *a), "");
  const auto future_iat = R"({"iss":"https://idp.example","aud":"gerbang","sub":"u","iat":)" +
                          std::to_string(kNow + 100) + R"(,"exp":)" + std::to_string(kNow + 600) + "}";
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), future_iat), *a), HasSubstr("iat"));
}

TEST_F(Jwt, RejectsLifetimeAboveMaximum) {
  auto cfg = issuer_config();
  cfg.max_lifetime = 3600s;
  auto a = build(cfg);
  const auto& k = key(KeyKind::ed25519);
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims("", kNow + 4000)), *a),
              HasSubstr("max_lifetime"));
  // Without iat, exp - now counts.
  const auto no_iat = R"({"iss":"https://idp.example","aud":"gerbang","sub":"u","exp":)" + std::to_string(kNow + 4000) + "}";
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), no_iat), *a), HasSubstr("max_lifetime"));
}

TEST_F(Jwt, ChecksAudienceStringOrArray) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  auto with_aud = [&](const std::string& aud) {
    return testing::make_token(k, "EdDSA", header("EdDSA", "ed"),
                               R"({"iss":"https://idp.example","sub":"u","exp":)" + std::to_string(kNow + 60) + aud + "}");
  };
  EXPECT_EQ(check(with_aud(R"(,"aud":["x","other"])"), *a), "");
  EXPECT_THAT(check(with_aud(R"(,"aud":"wrong")"), *a), HasSubstr("audience"));
  EXPECT_THAT(check(with_aud(R"(,"aud":["x","y"])"), *a), HasSubstr("audience"));
  EXPECT_THAT(check(with_aud(""), *a), HasSubstr("audience"));
  EXPECT_THAT(check(with_aud(R"(,"aud":[1])"), *a), HasSubstr("aud"));
}

TEST_F(Jwt, RejectsWrongIssuer) {
  auto a = build();
  const auto payload = R"({"iss":"https://evil.example","aud":"gerbang","sub":"u","exp":)" + std::to_string(kNow + 60) + "}";
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed"), payload), *a),
              HasSubstr("unknown issuer"));
}

TEST_F(Jwt, RejectsAlgNone) {
  auto a = build();
  const std::string input = testing::b64u(R"({"alg":"none","kid":"ed"})") + "." + testing::b64u(claims());
  EXPECT_NE(check(input + ".", *a), "");
  EXPECT_THAT(check(input + "." + testing::b64u("sig"), *a), HasSubstr("alg not supported"));
}

TEST_F(Jwt, RejectsHmacWithThePublicKeyAsSecret) {
  auto a = build();
  // The classic confusion: HS256 keyed with the RSA public key's bytes (as PEM and as the raw modulus).
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key(KeyKind::rsa).pkey.get());
  const std::string pem = crypto::bio_to_string(bio.get());
  for (const std::string& secret : {pem, testing::bn_bytes(key(KeyKind::rsa).pkey.get(), "n", 0)}) {
    const std::string input = testing::b64u(header("HS256", "rsa")) + "." + testing::b64u(claims());
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    EXPECT_THAT(check(input + "." + testing::b64u(std::string(reinterpret_cast<char*>(mac), len)), *a),
                HasSubstr("alg not supported"));
  }
}

TEST_F(Jwt, RejectsAlgorithmThatDoesNotMatchTheKey) {
  auto a = build();
  // RS256 signature, but the header points at the P-256 key.
  EXPECT_THAT(check(testing::make_token(key(KeyKind::rsa), "RS256", header("RS256", "p256"), claims()), *a),
              HasSubstr("does not match"));
  // ES256 header with the P-384 key.
  EXPECT_THAT(check(testing::make_token(key(KeyKind::p384), "ES384", header("ES256", "p384"), claims()), *a),
              HasSubstr("does not match"));
  // EdDSA header with the RSA key id.
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "rsa"), claims()), *a),
              HasSubstr("does not match"));
}

TEST_F(Jwt, RejectsAlgorithmNotAllowedForTheIssuer) {
  auto cfg = issuer_config();
  cfg.algorithms = {"EdDSA"};
  auto a = build(cfg);
  EXPECT_THAT(check(testing::make_token(key(KeyKind::rsa), "PS256", header("PS256", "rsa"), claims()), *a),
              HasSubstr("not allowed"));
}

TEST_F(Jwt, RejectsBadSignatures) {
  auto a = build();
  for (const auto& c : {AlgCase{"EdDSA", KeyKind::ed25519, "ed"}, AlgCase{"ES256", KeyKind::p256, "p256"},
                        AlgCase{"ES384", KeyKind::p384, "p384"}, AlgCase{"RS256", KeyKind::rsa, "rsa"},
                        AlgCase{"PS256", KeyKind::rsa, "rsa"}}) {
    const std::string h = header(c.alg, c.kid);
    const std::string input = testing::b64u(h) + "." + testing::b64u(claims());
    std::string sig = testing::sign(key(c.kind), c.alg, input);
    sig[sig.size() / 2] ^= 0x01;
    EXPECT_THAT(check(input + "." + testing::b64u(sig), *a), HasSubstr("bad signature")) << c.alg;
    // A valid signature over different claims.
    const auto other = testing::make_token(key(c.kind), c.alg, h, claims(R"(,"x":1)"));
    const auto forged = input + other.substr(other.rfind('.'));
    EXPECT_THAT(check(forged, *a), HasSubstr("bad signature")) << c.alg;
  }
  // RS256 signature presented as PS256 (padding confusion).
  const std::string input = testing::b64u(header("PS256", "rsa")) + "." + testing::b64u(claims());
  EXPECT_THAT(check(input + "." + testing::b64u(testing::sign(key(KeyKind::rsa), "RS256", input)), *a),
              HasSubstr("bad signature"));
}

TEST_F(Jwt, RejectsUnknownOrMissingKid) {
  auto a = build();
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "nope"), claims()), *a),
              HasSubstr("unknown kid"));
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", R"({"alg":"EdDSA"})", claims()), *a),
              HasSubstr("kid missing"));
}

TEST_F(Jwt, RejectsCrit) {
  auto a = build();
  EXPECT_THAT(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed", R"(,"crit":["exp"])"),
                                        claims()),
                    *a),
              HasSubstr("crit"));
}

TEST_F(Jwt, RejectsOversizedTokens) {
  auto cfg = issuer_config();
  cfg.max_token_bytes = 512;
  auto a = build(cfg);
  const auto token = testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed"),
                                         claims(R"(,"pad":")" + std::string(400, 'x') + "\""));
  ASSERT_GT(token.size(), 512u);
  EXPECT_THAT(check(token, *a), HasSubstr("larger"));
}

TEST_F(Jwt, RejectsMalformedEncodings) {
  auto a = build();
  const auto good = testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed"), claims());
  EXPECT_EQ(check(good, *a), "");
  const auto d1 = good.find('.'), d2 = good.rfind('.');
  EXPECT_NE(check(good + ".x", *a), "");                             // four parts
  EXPECT_NE(check(good.substr(0, d2), *a), "");                      // two parts
  EXPECT_THAT(check(good + "=", *a), HasSubstr("base64url"));        // padding
  EXPECT_THAT(check(good.substr(0, d1) + "+" + good.substr(d1), *a), HasSubstr("base64url"));  // std alphabet
  EXPECT_THAT(check(" " + good, *a), HasSubstr("base64url"));
  // Header not JSON / duplicate alg / payload not an object.
  auto with = [&](const std::string& h, const std::string& p) {
    const std::string input = testing::b64u(h) + "." + testing::b64u(p);
    return input + "." + testing::b64u(testing::sign(key(KeyKind::ed25519), "EdDSA", input));
  };
  EXPECT_THAT(check(with(R"({"alg":"EdDSA","kid":"ed")", claims()), *a), HasSubstr("header"));
  EXPECT_THAT(check(with(R"({"alg":"HS256","alg":"EdDSA","kid":"ed"})", claims()), *a), HasSubstr("header"));
  EXPECT_THAT(check(with(header("EdDSA", "ed"), "[1,2]"), *a), HasSubstr("payload"));
  EXPECT_THAT(check(with(header("EdDSA", "ed"), claims() + "x"), *a), HasSubstr("payload"));
  EXPECT_THAT(check(with(header("EdDSA", "ed"), "{\"iss\":\"\xff\"}"), *a), HasSubstr("payload"));
  // Non-zero trailing bits in the last base64url character ("QQ" = 'A', "QR" has stray bits).
  EXPECT_TRUE(base64url_decode("QQ").has_value());
  EXPECT_FALSE(base64url_decode("QR").has_value());
  EXPECT_FALSE(base64url_decode("Q").has_value());
  // Bytes >= 0x80 (libsodium 1.0.18 decodes them as '_'), found by the jwt fuzz target.
  EXPECT_FALSE(base64url_decode("Q\x93").has_value());
  EXPECT_FALSE(base64url_decode("\xff\xff\xff\xff").has_value());
}

TEST_F(Jwt, RejectsBadGroupsClaimAndSub) {
  auto a = build();
  const auto& k = key(KeyKind::ed25519);
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims(R"(,"groups":[1])")), *a),
              HasSubstr("group"));
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), claims(R"(,"groups":["a,b"])")), *a),
              HasSubstr("group"));
  const auto no_sub = R"({"iss":"https://idp.example","aud":"gerbang","exp":)" + std::to_string(kNow + 60) + "}";
  EXPECT_THAT(check(testing::make_token(k, "EdDSA", header("EdDSA", "ed"), no_sub), *a), HasSubstr("sub"));
}

TEST_F(Jwt, JwksLoadingIsStrict) {
  auto attempt = [&](const std::string& jwks) {
    auto cfg = issuer_config();
    cfg.jwks_file = dir_->write("bad.json", jwks, 0644);
    std::vector<std::string> errors;
    auto a = JwtAuthenticator::create({cfg}, errors);
    EXPECT_EQ(a, nullptr);
    return errors.empty() ? std::string() : errors.front();
  };
  const std::string ed = testing::jwk(key(KeyKind::ed25519));
  EXPECT_THAT(attempt(R"({"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]})"), HasSubstr("unsupported kty"));
  EXPECT_THAT(attempt(R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]})"), HasSubstr("kid"));
  EXPECT_THAT(attempt(R"({"keys":[)" + ed + "," + ed + "]}"), HasSubstr("used twice"));
  EXPECT_THAT(attempt(R"({"keys":[]})"), HasSubstr("no keys"));
  EXPECT_THAT(attempt("not json"), HasSubstr("not a JSON object"));
  // A point that is not on the curve.
  EXPECT_THAT(attempt(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":")" + testing::b64u(std::string(32, '\x01')) +
                      R"(","y":")" + testing::b64u(std::string(32, '\x02')) + R"("}]})"),
              HasSubstr("kid \"e\""));
  // A JWK whose own alg does not fit its type.
  EXPECT_THAT(attempt(R"({"keys":[)" + testing::jwk(key(KeyKind::p256), R"(,"alg":"RS256")") + "]}"),
              HasSubstr("does not fit"));
  // RSA below 2048 bits.
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  TestKey k{KeyKind::rsa, "small", crypto::EvpPkeyPtr(small)};
  EXPECT_THAT(attempt(R"({"keys":[)" + testing::jwk(k) + "]}"), HasSubstr("2048"));
}

TEST_F(Jwt, AcceptsFractionalNumericDates) {
  auto a = build();
  const auto payload = R"({"iss":"https://idp.example","aud":"gerbang","sub":"u","exp":)" + std::to_string(kNow + 60) + ".5}";
  EXPECT_EQ(check(testing::make_token(key(KeyKind::ed25519), "EdDSA", header("EdDSA", "ed"), payload), *a), "");
}

}  // namespace
}  // namespace gerbang::policies::authn
