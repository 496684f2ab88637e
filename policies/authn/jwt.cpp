#include "policies/authn/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "crypto/openssl.hpp"
#include "crypto/sha256.hpp"
#include "policies/authn/json.hpp"

namespace gerbang::policies::authn {

std::optional<std::string> base64url_decode(std::string_view in) {
  // The alphabet is checked here because libsodium 1.0.18 (Debian bookworm) does not: its constant-time
  // character classifier gets a sign-extended `char`, so every byte >= 0x80 decodes as the sextet 63
  // ("AA\x93\x93" decodes like "AA__"), and a forged spelling of a signature would verify. Found by
  // tests/fuzz/jwt_fuzz.cpp (corpus/jwt/regress-high-bit-base64url).
  for (const char c : in) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) {
      return std::nullopt;
    }
  }
  std::string out(in.size() * 3 / 4 + 3, '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  // libsodium's decoder then rejects the other ASCII characters (no ignore set), padding in this variant,
  // a dangling single character and non-zero trailing bits; `end` catches early stops.
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(), in.size(), nullptr, &len,
                        &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != in.data() + in.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

namespace {

enum class KeyType : std::uint8_t { ed25519, p256, p384, rsa };
enum class Alg : std::uint8_t { eddsa, es256, es384, rs256, ps256 };

std::optional<Alg> alg_from_name(std::string_view s) {
  if (s == "EdDSA") return Alg::eddsa;
  if (s == "ES256") return Alg::es256;
  if (s == "ES384") return Alg::es384;
  if (s == "RS256") return Alg::rs256;
  if (s == "PS256") return Alg::ps256;
  return std::nullopt;
}

KeyType key_type_for(Alg a) {
  switch (a) {
    case Alg::eddsa: return KeyType::ed25519;
    case Alg::es256: return KeyType::p256;
    case Alg::es384: return KeyType::p384;
    case Alg::rs256:
    case Alg::ps256: return KeyType::rsa;
  }
  return KeyType::rsa;
}

struct Key {
  KeyType type;
  std::optional<Alg> alg;  // the JWK's own "alg", if it names one
  crypto::EvpPkeyPtr pkey;
};

struct Issuer {
  JwtIssuerConfig cfg;
  std::vector<Alg> allowed;
  std::unordered_map<std::string, Key> keys;  // by kid
};

const json::Value* member_string(const json::Value& o, std::string_view name) {
  const auto* v = o.find(name);
  return v != nullptr && v->is_string() ? v : nullptr;
}

// Decodes a base64url JWK member into bytes; error names the member.
bool jwk_bytes(const json::Value& jwk, std::string_view name, std::string& out, std::string& error) {
  const auto* v = member_string(jwk, name);
  if (v == nullptr) {
    error = "member \"" + std::string(name) + "\" is missing or not a string";
    return false;
  }
  auto d = base64url_decode(v->string);
  if (!d || d->empty()) {
    error = "member \"" + std::string(name) + "\" is not valid unpadded base64url";
    return false;
  }
  out = std::move(*d);
  return true;
}

crypto::EvpPkeyPtr ec_key(const char* group, const std::string& x, const std::string& y, std::size_t coord,
                          std::string& error) {
  if (x.size() != coord || y.size() != coord) {
    error = "EC coordinates must be " + std::to_string(coord) + " bytes each";
    return nullptr;
  }
  std::string point = "\x04" + x + y;
  std::unique_ptr<OSSL_PARAM_BLD, crypto::Deleter<OSSL_PARAM_BLD_free>> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    error = crypto::openssl_failure("building EC key parameters");
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, crypto::Deleter<OSSL_PARAM_free>> params(OSSL_PARAM_BLD_to_param(bld.get()));
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    error = crypto::openssl_failure("the EC point is not on the curve or invalid");
    return nullptr;
  }
  crypto::EvpPkeyPtr pkey(raw);
  crypto::EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    error = crypto::openssl_failure("the EC public key failed validation");
    return nullptr;
  }
  return pkey;
}

crypto::EvpPkeyPtr rsa_key(const std::string& n, const std::string& e, std::string& error) {
  crypto::BignumPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  crypto::BignumPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) {
    error = crypto::openssl_failure("decoding the RSA modulus/exponent");
    return nullptr;
  }
  if (BN_num_bits(bn_n.get()) < 2048) {
    error = "RSA modulus has " + std::to_string(BN_num_bits(bn_n.get())) + " bits; at least 2048 are required";
    return nullptr;
  }
  if (!BN_is_odd(bn_e.get()) || BN_num_bits(bn_e.get()) < 2 || BN_num_bits(bn_e.get()) > 32) {
    error = "RSA public exponent must be odd, above 1 and at most 32 bits";
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM_BLD, crypto::Deleter<OSSL_PARAM_BLD_free>> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    error = crypto::openssl_failure("building RSA key parameters");
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, crypto::Deleter<OSSL_PARAM_free>> params(OSSL_PARAM_BLD_to_param(bld.get()));
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    error = crypto::openssl_failure("building the RSA key");
    return nullptr;
  }
  return crypto::EvpPkeyPtr(raw);
}

// One JWK → Key. `error` explains a refusal.
std::optional<Key> load_jwk(const json::Value& jwk, std::string& error) {
  if (!jwk.is_object()) {
    error = "a key is not a JSON object";
    return std::nullopt;
  }
  const auto* kty = member_string(jwk, "kty");
  if (kty == nullptr) {
    error = "member \"kty\" is missing";
    return std::nullopt;
  }
  Key key{KeyType::rsa, std::nullopt, nullptr};
  if (const auto* alg = jwk.find("alg")) {
    if (!alg->is_string() || !(key.alg = alg_from_name(alg->string))) {
      error = "unsupported \"alg\" " + (alg->is_string() ? "\"" + alg->string + "\"" : std::string("(not a string)"));
      return std::nullopt;
    }
  }
  if (const auto* use = jwk.find("use"); use != nullptr && !(use->is_string() && use->string == "sig")) {
    error = "member \"use\" must be \"sig\"";
    return std::nullopt;
  }
  if (kty->string == "OKP") {
    const auto* crv = member_string(jwk, "crv");
    if (crv == nullptr || crv->string != "Ed25519") {
      error = "OKP keys must have crv \"Ed25519\"";
      return std::nullopt;
    }
    std::string x;
    if (!jwk_bytes(jwk, "x", x, error)) return std::nullopt;
    if (x.size() != 32) {
      error = "Ed25519 \"x\" must be 32 bytes";
      return std::nullopt;
    }
    key.type = KeyType::ed25519;
    key.pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                               reinterpret_cast<const unsigned char*>(x.data()), x.size()));
    if (!key.pkey) error = crypto::openssl_failure("loading the Ed25519 key");
  } else if (kty->string == "EC") {
    const auto* crv = member_string(jwk, "crv");
    std::string x, y;
    if (!jwk_bytes(jwk, "x", x, error) || !jwk_bytes(jwk, "y", y, error)) return std::nullopt;
    if (crv != nullptr && crv->string == "P-256") {
      key.type = KeyType::p256;
      key.pkey = ec_key("P-256", x, y, 32, error);
    } else if (crv != nullptr && crv->string == "P-384") {
      key.type = KeyType::p384;
      key.pkey = ec_key("P-384", x, y, 48, error);
    } else {
      error = "EC keys must have crv \"P-256\" or \"P-384\"";
      return std::nullopt;
    }
  } else if (kty->string == "RSA") {
    std::string n, e;
    if (!jwk_bytes(jwk, "n", n, error) || !jwk_bytes(jwk, "e", e, error)) return std::nullopt;
    key.type = KeyType::rsa;
    key.pkey = rsa_key(n, e, error);
  } else {
    // "oct" (a shared HMAC secret) has no place in a public key set; anything else is unknown.
    error = "unsupported kty \"" + kty->string + "\" (supported: OKP Ed25519, EC P-256/P-384, RSA)";
    return std::nullopt;
  }
  if (!key.pkey) return std::nullopt;
  if (key.alg && key_type_for(*key.alg) != key.type) {
    error = "its \"alg\" does not fit its key type";
    return std::nullopt;
  }
  return key;
}

bool load_jwks(const std::string& path, Issuer& issuer, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read JWKS file \"" + path + "\"";
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (4u << 20)) {
    error = "JWKS file \"" + path + "\" is larger than 4 MiB";
    return false;
  }
  auto doc = json::parse(text.str(), 8);
  const json::Value* keys = doc ? doc->find("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) {
    error = "JWKS file \"" + path + "\" is not a JSON object with a \"keys\" array";
    return false;
  }
  if (keys->items.empty()) {
    error = "JWKS file \"" + path + "\" has no keys";
    return false;
  }
  for (std::size_t i = 0; i < keys->items.size(); ++i) {
    const auto& jwk = keys->items[i];
    const std::string where = "JWKS file \"" + path + "\" keys[" + std::to_string(i) + "]: ";
    const auto* kid = jwk.is_object() ? member_string(jwk, "kid") : nullptr;
    if (kid == nullptr || kid->string.empty()) {
      error = where + "member \"kid\" is required (keys are selected by kid)";
      return false;
    }
    std::string why;
    auto key = load_jwk(jwk, why);
    if (!key) {
      error = where + "kid \"" + kid->string + "\": " + why;
      return false;
    }
    if (!issuer.keys.emplace(kid->string, std::move(*key)).second) {
      error = where + "kid \"" + kid->string + "\" is used twice";
      return false;
    }
  }
  return true;
}

// JWS ECDSA signatures are r || s, fixed width; OpenSSL wants DER (RFC 7518 §3.4).
std::optional<std::string> ecdsa_raw_to_der(std::string_view sig, std::size_t coord) {
  if (sig.size() != 2 * coord) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, crypto::Deleter<ECDSA_SIG_free>> es(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), static_cast<int>(coord), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data() + coord), static_cast<int>(coord), nullptr);
  if (!es || r == nullptr || s == nullptr || ECDSA_SIG_set0(es.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(es.get(), &der);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool verify_signature(const Key& key, Alg alg, std::string_view signing_input, std::string_view sig) {
  crypto::EvpMdCtxPtr md(EVP_MD_CTX_new());
  if (!md) return false;
  EVP_PKEY_CTX* pctx = nullptr;
  std::string der;
  std::string_view s = sig;
  const EVP_MD* digest = nullptr;
  switch (alg) {
    case Alg::eddsa:
      if (sig.size() != 64) return false;
      break;
    case Alg::es256:
    case Alg::es384: {
      const std::size_t coord = alg == Alg::es256 ? 32 : 48;
      auto d = ecdsa_raw_to_der(sig, coord);
      if (!d) return false;
      der = std::move(*d);
      s = der;
      digest = alg == Alg::es256 ? EVP_sha256() : EVP_sha384();
      break;
    }
    case Alg::rs256:
    case Alg::ps256:
      digest = EVP_sha256();
      break;
  }
  bool ok = EVP_DigestVerifyInit(md.get(), &pctx, digest, nullptr, key.pkey.get()) == 1;
  if (ok && alg == Alg::ps256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
  }
  ok = ok && EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(s.data()), s.size(),
                              reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  // A failed verification leaves entries on this thread's error queue; they are expected, not operator news.
  ERR_clear_error();
  return ok;
}

bool has_control(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

// NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional. Floor to whole seconds.
std::optional<std::int64_t> numeric_date(const json::Value* v) {
  if (v == nullptr || !v->is_number()) return std::nullopt;
  if (v->integral) return v->integer;
  if (!(v->number > -1e15 && v->number < 1e15)) return std::nullopt;
  return static_cast<std::int64_t>(std::floor(v->number));
}

}  // namespace

// Tokens that verified, by SHA-256 of the whole token, so a client sending the same bearer token on every
// request pays one signature verification (~100 us for Ed25519, more for RSA) per token, not per request.
// A hit is accepted only inside the window the claims allowed at verification ([max(nbf, iat) - leeway,
// exp + leeway]); everything else about a token (signature, issuer, key, audience, lifetime) does not change
// with time. Bounded: kShards x kPerShard entries; when a shard is full the entry that expires first goes.
// The cache lives and dies with the authenticator, so a reload with new keys starts empty. Failures are not
// cached: a changed byte anywhere is a different hash and a full verification.
class VerifiedCache {
 public:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kPerShard = 256;  // 4096 tokens in all

  std::optional<JwtAuthenticator::Verified> find(const crypto::Hash& h, std::int64_t now) {
    Shard& s = shard(h);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(h);
    if (it == s.map.end()) return std::nullopt;
    if (now < it->second.from || now > it->second.until) {
      s.map.erase(it);
      return std::nullopt;
    }
    return it->second.verified;
  }

  void insert(const crypto::Hash& h, const JwtAuthenticator::Verified& v, std::int64_t from, std::int64_t until) {
    Shard& s = shard(h);
    std::lock_guard lock(s.mu);
    if (s.map.size() >= kPerShard && s.map.count(h) == 0) {
      auto victim = std::min_element(s.map.begin(), s.map.end(),
                                     [](const auto& a, const auto& b) { return a.second.until < b.second.until; });
      s.map.erase(victim);
    }
    s.map.insert_or_assign(h, Entry{v, from, until});
  }

  std::size_t size() {
    std::size_t n = 0;
    for (auto& s : shards_) {
      std::lock_guard lock(s.mu);
      n += s.map.size();
    }
    return n;
  }

 private:
  struct Entry {
    JwtAuthenticator::Verified verified;
    std::int64_t from = 0, until = 0;
  };
  struct HashOfHash {
    std::size_t operator()(const crypto::Hash& h) const noexcept {
      std::size_t v;
      std::memcpy(&v, h.data() + 8, sizeof v);  // SHA-256 output is uniform; bytes 0..7 pick the shard
      return v;
    }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<crypto::Hash, Entry, HashOfHash> map;
  };
  Shard& shard(const crypto::Hash& h) { return shards_[h[0] % kShards]; }
  std::array<Shard, kShards> shards_;
};

struct JwtAuthenticator::Impl {
  std::vector<Issuer> issuers;
  std::unordered_map<std::string, std::size_t> by_iss;  // `iss` value → issuer
  std::size_t max_token_bytes = 0;                      // largest over the issuers (pre-parse bound)
  mutable VerifiedCache cache;
};

JwtAuthenticator::JwtAuthenticator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwtAuthenticator::~JwtAuthenticator() = default;

const JwtIssuerConfig& JwtAuthenticator::issuer(std::size_t i) const { return impl_->issuers.at(i).cfg; }
std::size_t JwtAuthenticator::issuer_count() const noexcept { return impl_->issuers.size(); }

std::unique_ptr<JwtAuthenticator> JwtAuthenticator::create(const std::vector<JwtIssuerConfig>& issuers,
                                                           std::vector<std::string>& errors) {
  auto impl = std::make_unique<Impl>();
  const std::size_t before = errors.size();
  for (std::size_t i = 0; i < issuers.size(); ++i) {
    const auto& cfg = issuers[i];
    const std::string where = "auth.jwt_issuers[" + std::to_string(i) + "] (" + cfg.name + "): ";
    Issuer is;
    is.cfg = cfg;
    for (const auto& a : cfg.algorithms) {
      auto alg = alg_from_name(a);
      if (!alg) {
        errors.push_back(where + "unsupported algorithm \"" + a + "\"");
        continue;
      }
      is.allowed.push_back(*alg);
    }
    std::string error;
    if (!load_jwks(cfg.jwks_file, is, error)) {
      errors.push_back(where + error);
      continue;
    }
    if (!impl->by_iss.emplace(cfg.issuer, impl->issuers.size()).second) {
      errors.push_back(where + "issuer \"" + cfg.issuer + "\" is configured twice");
      continue;
    }
    impl->max_token_bytes = std::max<std::size_t>(impl->max_token_bytes, cfg.max_token_bytes);
    impl->issuers.push_back(std::move(is));
  }
  if (errors.size() != before) return nullptr;
  return std::unique_ptr<JwtAuthenticator>(new JwtAuthenticator(std::move(impl)));
}

std::size_t JwtAuthenticator::cached_tokens() const { return impl_->cache.size(); }

std::optional<JwtAuthenticator::Verified> JwtAuthenticator::verify(std::string_view token,
                                                                   std::chrono::system_clock::time_point now_tp,
                                                                   std::string_view& why) const {
  if (token.size() > impl_->max_token_bytes) {
    why = "jwt: token larger than max_token_bytes";
    return std::nullopt;
  }
  const crypto::Hash h = crypto::sha256(token);
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(now_tp.time_since_epoch()).count();
  if (auto hit = impl_->cache.find(h, now)) return hit;
  std::int64_t from = 0, until = 0;
  auto verified = verify_uncached(token, now_tp, why, from, until);
  if (verified) impl_->cache.insert(h, *verified, from, until);
  return verified;
}

std::optional<JwtAuthenticator::Verified> JwtAuthenticator::verify_uncached(std::string_view token,
                                                                            std::chrono::system_clock::time_point now_tp,
                                                                            std::string_view& why, std::int64_t& from,
                                                                            std::int64_t& until) const {
  const auto fail = [&why](std::string_view w) -> std::optional<Verified> {
    why = w;
    return std::nullopt;
  };
  if (token.size() > impl_->max_token_bytes) return fail("jwt: token larger than max_token_bytes");
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return fail("jwt: not three dot-separated parts");
  const auto h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1), s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty() || s64.empty()) return fail("jwt: empty part");
  auto header_text = base64url_decode(h64);
  auto payload_text = base64url_decode(p64);
  auto sig = base64url_decode(s64);
  if (!header_text || !payload_text || !sig) return fail("jwt: invalid base64url");
  auto header = json::parse(*header_text, 4);
  if (!header || !header->is_object()) return fail("jwt: header is not a JSON object");
  auto payload = json::parse(*payload_text, 8);
  if (!payload || !payload->is_object()) return fail("jwt: payload is not a JSON object");

  // --- header ---
  if (header->find("crit") != nullptr) return fail("jwt: crit header present");
  if (header->find("zip") != nullptr) return fail("jwt: zip header present");
  const auto* alg_v = member_string(*header, "alg");
  if (alg_v == nullptr) return fail("jwt: alg missing");
  if (const auto* typ = header->find("typ")) {
    if (!typ->is_string()) return fail("jwt: typ is not a string");
    std::string t;
    for (char c : typ->string) t += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (t != "jwt" && t != "at+jwt" && t != "application/jwt" && t != "application/at+jwt")
      return fail("jwt: unexpected typ");
  }
  const auto alg = alg_from_name(alg_v->string);
  if (!alg) return fail("jwt: alg not supported (none, HS*, or unknown)");
  const auto* kid_v = member_string(*header, "kid");
  if (kid_v == nullptr) return fail("jwt: kid missing");

  // --- issuer and key ---
  const auto* iss_v = member_string(*payload, "iss");
  if (iss_v == nullptr) return fail("jwt: iss missing");
  auto is_it = impl_->by_iss.find(iss_v->string);
  if (is_it == impl_->by_iss.end()) return fail("jwt: unknown issuer");
  const Issuer& is = impl_->issuers[is_it->second];
  if (token.size() > is.cfg.max_token_bytes) return fail("jwt: token larger than the issuer's max_token_bytes");
  if (std::find(is.allowed.begin(), is.allowed.end(), *alg) == is.allowed.end())
    return fail("jwt: alg not allowed for this issuer");
  auto key_it = is.keys.find(kid_v->string);
  if (key_it == is.keys.end()) return fail("jwt: unknown kid");
  const Key& key = key_it->second;
  if (key_type_for(*alg) != key.type || (key.alg && *key.alg != *alg)) return fail("jwt: alg does not match the key");
  if (!verify_signature(key, *alg, token.substr(0, d2), *sig)) return fail("jwt: bad signature");

  // --- claims ---
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(now_tp.time_since_epoch()).count();
  const std::int64_t leeway = is.cfg.leeway.count();
  const auto exp = numeric_date(payload->find("exp"));
  if (!exp) return fail("jwt: exp missing or not a number");
  if (now > *exp + leeway) return fail("jwt: expired");
  if (const auto* nbf_v = payload->find("nbf")) {
    auto nbf = numeric_date(nbf_v);
    if (!nbf) return fail("jwt: nbf not a number");
    if (now + leeway < *nbf) return fail("jwt: not yet valid (nbf)");
  }
  std::optional<std::int64_t> iat;
  if (const auto* iat_v = payload->find("iat")) {
    iat = numeric_date(iat_v);
    if (!iat) return fail("jwt: iat not a number");
    if (*iat > now + leeway) return fail("jwt: issued in the future (iat)");
  }
  const std::int64_t lifetime = *exp - (iat ? *iat : now);
  if (lifetime > is.cfg.max_lifetime.count()) return fail("jwt: lifetime above max_lifetime");
  // The window in which these claims keep passing the checks above (for the verified-token cache).
  from = std::numeric_limits<std::int64_t>::min();
  if (const auto* nbf_v = payload->find("nbf")) from = std::max(from, *numeric_date(nbf_v) - leeway);
  if (iat) from = std::max(from, *iat - leeway);
  until = *exp + leeway;

  const auto* aud = payload->find("aud");
  bool aud_ok = false;
  auto accepted = [&is](const std::string& a) {
    return std::find(is.cfg.audiences.begin(), is.cfg.audiences.end(), a) != is.cfg.audiences.end();
  };
  if (aud != nullptr && aud->is_string()) {
    aud_ok = accepted(aud->string);
  } else if (aud != nullptr && aud->is_array()) {
    for (const auto& a : aud->items) {
      if (!a.is_string()) return fail("jwt: aud array holds a non-string");
      aud_ok = aud_ok || accepted(a.string);
    }
  }
  if (!aud_ok) return fail("jwt: audience not accepted");

  const auto* sub = member_string(*payload, "sub");
  if (sub == nullptr || sub->string.empty() || sub->string.size() > 256 || has_control(sub->string))
    return fail("jwt: sub missing or invalid");

  Verified out;
  out.issuer = is_it->second;
  out.subject = sub->string;
  if (const auto* g = payload->find(is.cfg.groups_claim)) {
    auto add = [&out](const json::Value& v) {
      if (!v.is_string() || v.string.empty() || v.string.size() > 128 || has_control(v.string) ||
          v.string.find(',') != std::string::npos)
        return false;
      out.groups.push_back(v.string);
      return true;
    };
    if (g->is_array()) {
      if (g->items.size() > 256) return fail("jwt: too many groups");
      for (const auto& item : g->items)
        if (!add(item)) return fail("jwt: groups claim holds an invalid group");
    } else if (!add(*g)) {
      return fail("jwt: groups claim is not a string or an array of strings");
    }
  }
  return out;
}

}  // namespace gerbang::policies::authn
