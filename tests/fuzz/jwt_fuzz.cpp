// JWT verification (policies/authn/jwt.hpp) with a fixed JWKS (Ed25519, P-256, RSA-2048) and a fixed clock.
//
// Input: first byte = mode.
//   even: the rest is the token as a client would send it (base64url, dots, signature and all);
//   odd:  the rest is "<header JSON>\n<payload JSON>" (or just a payload, with a default header); the target
//         signs it with the fixed key for alg (mode >> 1) % 4 (EdDSA, ES256, RS256, PS256), so the fuzzer
//         reaches the header and claim checks behind a valid signature.
// Invariants: no crash or UB; an accepted token has a non-empty subject; an accepted token with one
// signature byte flipped is refused; raw tokens longer than max_token_bytes are refused.
#include <memory>
#include <string>
#include <vector>

#include "policies/authn/jwt.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/fuzz/jwt_fuzz_keys.hpp"

using gerbang::policies::authn::base64url_decode;
using gerbang::policies::authn::base64url_encode;
using gerbang::policies::authn::JwtAuthenticator;
namespace fj = gerbang::fuzz::jwt;

namespace {

const JwtAuthenticator& authenticator() {
  static const std::unique_ptr<JwtAuthenticator> a = [] {
    const std::string path = fj::write_temp("jwks.json", fj::jwks());
    std::vector<std::string> errors;
    auto made = JwtAuthenticator::create({fj::issuer_config(path)}, errors);
    std::remove(path.c_str());
    if (!made) {
      std::fprintf(stderr, "JWKS refused: %s\n", errors.empty() ? "?" : errors.front().c_str());
      std::abort();
    }
    return made;
  }();
  return *a;
}

const std::chrono::system_clock::time_point kNowTp{std::chrono::seconds(fj::kNow)};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 16 * 1024) {
    return 0;
  }
  const JwtAuthenticator& auth = authenticator();
  const std::string_view rest = gerbang::fuzz::as_view(data + 1, size - 1);
  std::string token;
  if ((data[0] & 1) == 0) {
    token.assign(rest);
  } else {
    const auto alg = static_cast<fj::Alg>((data[0] >> 1) % 4);
    const auto nl = rest.find('\n');
    std::string header, payload;
    if (nl == std::string_view::npos) {
      header = std::string(R"({"alg":")") + fj::alg_name(alg) + R"(","kid":")" + fj::kid_for(alg) + R"("})";
      payload.assign(rest);
    } else {
      header.assign(rest.substr(0, nl));
      payload.assign(rest.substr(nl + 1));
    }
    token = fj::make_token(alg, header, payload);
  }

  // Also the strict base64url decoder on its own: decode(encode(x)) == x, and decode is canonical.
  if (const auto d = base64url_decode(rest)) {
    GERBANG_FUZZ_CHECK(base64url_encode(*d) == rest);
  }

  std::string_view why;
  const auto v = auth.verify(token, kNowTp, why);
  if (!v) {
    return 0;
  }
  GERBANG_FUZZ_CHECK(!v->subject.empty());
  GERBANG_FUZZ_CHECK(v->issuer == 0);
  GERBANG_FUZZ_CHECK(token.size() <= auth.issuer(0).max_token_bytes);

  // A flipped signature byte must be refused.
  const auto dot = token.rfind('.');
  GERBANG_FUZZ_CHECK(dot != std::string::npos);
  auto sig = base64url_decode(std::string_view(token).substr(dot + 1));
  GERBANG_FUZZ_CHECK(sig.has_value() && !sig->empty());
  (*sig)[sig->size() / 2] ^= 0x01;
  const std::string forged = token.substr(0, dot + 1) + base64url_encode(*sig);
  std::string_view why2;
  GERBANG_FUZZ_CHECK(!auth.verify(forged, kNowTp, why2).has_value());
  return 0;
}
