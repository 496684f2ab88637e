// Fixed signing keys for the JWT/JWKS fuzz targets, their JWKS, and a JWS signer.
//
// These keys were generated once for fuzzing (openssl genpkey) and protect nothing; they are fixed so that
// seed tokens in tests/fuzz/corpus/jwt stay valid across runs. Ed25519 comes from a fixed seed.
#pragma once

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policies/authn/jwt.hpp"

namespace gerbang::fuzz::jwt {

inline constexpr std::int64_t kNow = 1700000000;  // the fuzzers' fixed clock
inline constexpr const char* kIssuer = "https://idp.fuzz";
inline constexpr const char* kAudience = "gerbang";

inline constexpr const char* kP256Pem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNrNUs5IoWZXkLWeW
uVgP2DX1Nu825BMgkzL9VlkEjFqhRANCAASkdax06VkwJt+fNjY4060FbLUsr7Dh
ilJB/ezptM8PnEc3EJFBJbm/AAs1M2pmp7sd2AYlmN5XIVeJIkOhS4UA
-----END PRIVATE KEY-----
)";
inline constexpr const char* kRsaPem = R"(-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCIrocxMCBPT25r
4NLiaKJU/IRg0TckpMPuI2RV4EPcP7XZNPw9Kl+r2j1ktZAZRsLnAPhfu2XGIYUX
V5+5iCZEBTg0oR0rJRBWpFdyPNOynMWqb/irEF04XmiDz6BGOsERqvcXeWjpXjw6
a3mPdvybWvQGcrucrI8FllpXmOIUFYGE/prwDZEP+DL5/4v4Vzb5iNtMn1mKao8W
nW/nLnFPLJwzPgRSU7SesSnR6QUYfgR+ujKo86siNxSowcU0GtfytoVY1dkw0rRs
/zcLYCjwfeH3PvIH2jLB3Wco0k39X2PzHhW6lbYDAAOI5ryA43M+16MWYraOodYg
RtQ9YdHPAgMBAAECggEAG354BWX36dxBiwPDh/WiSdQt0Mfk/sMCAqIt6bReEizi
qJmm76rZadlRpjN7lAoO5KbmT2OD2nIdso9WutxvThl6r+OE2YvwGG2ghYNE1lYA
0QMLE2YMSm17OqCGTfo9og8w+xDaEK97EAlUf45gy+Nk2PM1WBPCBU60R5CiUYWi
saQIhX7o0xH648yYl1YE6Vffwq5/2IYH0QLIVzbm/mFN1L17U2SrOGYQRiNah2rN
IhBGFjRfwdih1keNOmnVameCbxqXvOotJqpdTYFPBhFi3/MqTacxqLnDSvKoK3AB
wGQ6+k7HVIQ2gPTRB+8+gKSZB9jv0NcthpbrH4MTaQKBgQC7NIGp/wEneCg5gKNc
dGT/4zonptoS0HywdzSOEzFYB7SzoXvBTgqpdMgjTBRZ8yI7uq/2oXzhR/M8NSGg
R5IdC/eymaGXwy9Svej4BNBsPvrkloLMVKsczi4kdpXV6I9EyilPtSi+jxN7En4D
LAPXOiSjNsq/0u03qL4w/z6z+wKBgQC66P2Hwh+6ZUnAYvrjm6oMsEPYM9+ZHtUa
lm0vsrgjVSwhsvWLwzZorx5lJbvMoO8uy6np4LHhjxE5+a+6UIpdVhNgYHVjyjq7
STl5CFYNcxJhYQGLsRiwjDZWoC10uFEtJz9ks9ACoeXBZUZ9FFHNxZroLHRWKYoL
qginKDCdPQKBgQCLD97+E9KcqjJfPMKdTE02lGm/yL8X2M23HGXq4DD4boj6IwvW
NY3QAVMmfT5k7ypP6kcKUz1778GsyN8Yu/G7KAexIVSbcr91nGMx0gmtTz96jJ/O
/1o4xKQcLAbz5pR+ihoT/sOsgoX7F2qKGqkjuSo8H9iOlDXo8a2OohzG/wKBgDFR
u1xwN8kKYwyV0Zfvgk540F4jSfPwc9DhMoxsfzQrjEqUG0C20QuMcdvEuipDqPlT
GlGxTZ60DpqarOjfybLZPKGosjETsq2qo7SxI2vHGmmBnFPM9jPXu5reB0CORjVA
7vRWkiOvrp16aMAmdXNzme17lXMK4Pc09bWN4E4NAoGAWsfvWobVq8mIiCM6ltVb
AupthEiK8DZ/NpcPzuTw03El0gjsGjwMxsYcYkO5gsX8V87jcO1OC64Jel7NVLEA
JZxsuD/wPD/Q3MRVN5Qb9ahNMjlFaLeW9I/xX5cubAJhWSMjlFRtrEvRKHJ6Zvoj
7k087Ppm7voYeS/imhDgcTs=
-----END PRIVATE KEY-----
)";

enum class Alg { eddsa, es256, rs256, ps256 };
inline const char* alg_name(Alg a) {
  switch (a) {
    case Alg::eddsa: return "EdDSA";
    case Alg::es256: return "ES256";
    case Alg::rs256: return "RS256";
    case Alg::ps256: return "PS256";
  }
  return "";
}
inline const char* kid_for(Alg a) {
  switch (a) {
    case Alg::eddsa: return "ed";
    case Alg::es256: return "p256";
    case Alg::rs256:
    case Alg::ps256: return "rsa";
  }
  return "";
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "fuzz key setup failed: %s\n", what);
  std::abort();
}

struct Keys {
  EVP_PKEY* ed = nullptr;
  EVP_PKEY* p256 = nullptr;
  EVP_PKEY* rsa = nullptr;

  static const Keys& get() {
    static const Keys k = [] {
      Keys k;
      unsigned char seed[32];
      for (int i = 0; i < 32; ++i) seed[i] = static_cast<unsigned char>(0x42 + i);
      k.ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, sizeof seed);
      k.p256 = read_pem(kP256Pem);
      k.rsa = read_pem(kRsaPem);
      if (k.ed == nullptr || k.p256 == nullptr || k.rsa == nullptr) die("keys");
      return k;
    }();
    return k;
  }
  EVP_PKEY* for_alg(Alg a) const { return a == Alg::eddsa ? ed : a == Alg::es256 ? p256 : rsa; }

 private:
  static EVP_PKEY* read_pem(const char* pem) {
    BIO* bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return k;
  }
};

inline std::string bn_param(const EVP_PKEY* k, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) die("get_bn_param");
  const int len = pad > 0 ? pad : BN_num_bytes(bn);
  std::string out(static_cast<std::size_t>(len), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  BN_free(bn);
  return out;
}

// {"keys":[ed, p256, rsa]} with kids "ed", "p256", "rsa".
inline std::string jwks() {
  using policies::authn::base64url_encode;
  const Keys& k = Keys::get();
  std::string x(32, '\0');
  std::size_t len = 32;
  EVP_PKEY_get_raw_public_key(k.ed, reinterpret_cast<unsigned char*>(x.data()), &len);
  std::string s = R"({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":")" + base64url_encode(x) + R"("},)";
  s += R"({"kty":"EC","crv":"P-256","kid":"p256","x":")" +
       base64url_encode(bn_param(k.p256, OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(","y":")" +
       base64url_encode(bn_param(k.p256, OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + R"("},)";
  s += R"({"kty":"RSA","kid":"rsa","n":")" + base64url_encode(bn_param(k.rsa, OSSL_PKEY_PARAM_RSA_N, 0)) +
       R"(","e":")" + base64url_encode(bn_param(k.rsa, OSSL_PKEY_PARAM_RSA_E, 0)) + R"("}]})";
  return s;
}

// JWS signature over `input` (ECDSA converted from DER to r||s, RFC 7518 §3.4).
inline std::string sign(Alg alg, std::string_view input) {
  EVP_PKEY* key = Keys::get().for_alg(alg);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == Alg::eddsa ? nullptr : EVP_sha256();
  if (EVP_DigestSignInit(ctx, &pctx, md, nullptr, key) != 1) die("DigestSignInit");
  if (alg == Alg::ps256) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
  }
  std::size_t n = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx, nullptr, &n, in, input.size()) != 1) die("DigestSign size");
  std::string sig(n, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n, in, input.size()) != 1) die("DigestSign");
  sig.resize(n);
  EVP_MD_CTX_free(ctx);
  if (alg != Alg::es256) return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  if (es == nullptr) die("d2i_ECDSA_SIG");
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

inline std::string make_token(Alg alg, std::string_view header, std::string_view payload) {
  using policies::authn::base64url_encode;
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(sign(alg, input));
}

// Writes `text` to a per-process file under /dev/shm (or /tmp) and returns its path.
inline std::string write_temp(const std::string& name, std::string_view text) {
  static const std::string dir = [] {
    std::FILE* probe = std::fopen("/dev/shm/.gerbang-fuzz-probe", "w");
    if (probe != nullptr) {
      std::fclose(probe);
      std::remove("/dev/shm/.gerbang-fuzz-probe");
      return std::string("/dev/shm");
    }
    return std::string("/tmp");
  }();
  const std::string path = dir + "/gerbang-fuzz-" + std::to_string(::getpid()) + "-" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) die("temp file");
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), f) != text.size()) die("temp write");
  std::fclose(f);
  return path;
}

inline policies::JwtIssuerConfig issuer_config(const std::string& jwks_path) {
  policies::JwtIssuerConfig c;
  c.name = "fuzz";
  c.issuer = kIssuer;
  c.audiences = {kAudience, "other"};
  c.jwks_file = jwks_path;
  return c;
}

}  // namespace gerbang::fuzz::jwt
