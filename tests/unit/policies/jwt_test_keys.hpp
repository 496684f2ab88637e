// Test helpers: real OpenSSL keys generated per test run, their JWKs, and a JWS signer, so JWT tests sign
// genuine tokens (STYLE.md §2.21: real objects; only time is fixed).
#pragma once

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "crypto/openssl.hpp"
#include "policies/authn/jwt.hpp"

namespace gerbang::policies::testing {

enum class KeyKind { ed25519, p256, p384, rsa };

struct TestKey {
  KeyKind kind;
  std::string kid;
  crypto::EvpPkeyPtr pkey;
};

inline TestKey make_key(KeyKind kind, std::string kid) {
  EVP_PKEY* k = nullptr;
  switch (kind) {
    case KeyKind::ed25519: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    case KeyKind::p256: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyKind::p384: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyKind::rsa: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)); break;
  }
  if (k == nullptr) throw std::runtime_error("keygen failed");
  return TestKey{kind, std::move(kid), crypto::EvpPkeyPtr(k)};
}

inline std::string b64u(std::string_view s) { return policies::authn::base64url_encode(s); }

inline std::string bn_bytes(const EVP_PKEY* k, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) throw std::runtime_error("get_bn_param");
  std::string out(pad > 0 ? static_cast<std::size_t>(pad) : static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  if (pad > 0) BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  else BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

inline std::string jwk(const TestKey& key, const std::string& extra = "") {
  std::string body;
  switch (key.kind) {
    case KeyKind::ed25519: {
      std::string x(32, '\0');
      std::size_t len = 32;
      EVP_PKEY_get_raw_public_key(key.pkey.get(), reinterpret_cast<unsigned char*>(x.data()), &len);
      body = R"("kty":"OKP","crv":"Ed25519","x":")" + b64u(x) + "\"";
      break;
    }
    case KeyKind::p256:
    case KeyKind::p384: {
      const int n = key.kind == KeyKind::p256 ? 32 : 48;
      body = std::string(R"("kty":"EC","crv":")") + (n == 32 ? "P-256" : "P-384") + R"(","x":")" +
             b64u(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, n)) + R"(","y":")" +
             b64u(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, n)) + "\"";
      break;
    }
    case KeyKind::rsa:
      body = R"("kty":"RSA","n":")" + b64u(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_RSA_N, 0)) + R"(","e":")" +
             b64u(bn_bytes(key.pkey.get(), OSSL_PKEY_PARAM_RSA_E, 0)) + "\"";
      break;
  }
  return "{" + body + R"(,"kid":")" + key.kid + "\"" + extra + "}";
}

// Signs `signing_input` as JWS `alg` with the key; ECDSA output converted DER → r||s.
inline std::string sign(const TestKey& key, std::string_view alg, std::string_view signing_input) {
  crypto::EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* digest = nullptr;
  if (alg == "ES256" || alg == "RS256" || alg == "PS256") digest = EVP_sha256();
  if (alg == "ES384") digest = EVP_sha384();
  if (EVP_DigestSignInit(md.get(), &pctx, digest, nullptr, key.pkey.get()) != 1) throw std::runtime_error("sign init");
  if (alg == "PS256") {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
  EVP_DigestSign(md.get(), nullptr, &len, in, signing_input.size());
  std::string sig(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, signing_input.size()) != 1)
    throw std::runtime_error("sign");
  sig.resize(len);
  if (alg == "ES256" || alg == "ES384") {
    const int n = alg == "ES256" ? 32 : 48;
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(static_cast<std::size_t>(2 * n), '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), n);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + n, n);
    ECDSA_SIG_free(es);
    return raw;
  }
  return sig;
}

// header and payload are JSON texts.
inline std::string make_token(const TestKey& key, std::string_view alg, const std::string& header,
                              const std::string& payload) {
  const std::string input = b64u(header) + "." + b64u(payload);
  return input + "." + b64u(sign(key, alg, input));
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "gerbang-policies-test-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& content, int mode = 0600) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    std::filesystem::permissions(p, static_cast<std::filesystem::perms>(mode));
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace gerbang::policies::testing
