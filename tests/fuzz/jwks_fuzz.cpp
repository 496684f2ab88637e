// JWKS loading (JwtAuthenticator::create over a JWKS file) and the strict JSON reader underneath
// (policies/authn/json.hpp).
//
// The input is written to a per-process file under /dev/shm and loaded as one issuer's JWKS; the same bytes
// also go to json::parse directly. Invariants: no crash or UB; create() either builds an authenticator or
// reports at least one error; json::parse refuses nesting deeper than its limit, and its numbers are
// consistent (integral values equal their double).
#include <unistd.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "policies/authn/json.hpp"
#include "policies/authn/jwt.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/fuzz/jwt_fuzz_keys.hpp"

namespace json = gerbang::policies::authn::json;
namespace fj = gerbang::fuzz::jwt;

namespace {

std::size_t depth_of(const json::Value& v) {
  std::size_t d = 0;
  for (const auto& i : v.items) d = std::max(d, depth_of(i));
  for (const auto& m : v.members) d = std::max(d, depth_of(m.second));
  return (v.is_array() || v.is_object()) ? d + 1 : d;
}

void check_value(const json::Value& v) {
  if (v.is_number() && v.integral) {
    GERBANG_FUZZ_CHECK(static_cast<double>(v.integer) == v.number);
  }
  if (v.is_number()) {
    GERBANG_FUZZ_CHECK(std::isfinite(v.number));
  }
  for (const auto& i : v.items) check_value(i);
  for (std::size_t i = 0; i < v.members.size(); ++i) {
    for (std::size_t j = i + 1; j < v.members.size(); ++j) {
      GERBANG_FUZZ_CHECK(v.members[i].first != v.members[j].first);  // duplicates are refused
    }
    check_value(v.members[i].second);
  }
}

std::string& path_for_cleanup() {
  static std::string p;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) {
    return 0;
  }
  const std::string_view in = gerbang::fuzz::as_view(data, size);
  if (const auto v = json::parse(in, 8)) {
    GERBANG_FUZZ_CHECK(depth_of(*v) <= 8);
    check_value(*v);
  }

  static const std::string path = [] {
    std::string p = fj::write_temp("jwks-input.json", "");
    std::atexit([] { std::remove(path_for_cleanup().c_str()); });
    path_for_cleanup() = p;
    return p;
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  GERBANG_FUZZ_CHECK(f != nullptr);
  if (size > 0) GERBANG_FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
  std::fclose(f);
  std::vector<std::string> errors;
  const auto a = gerbang::policies::authn::JwtAuthenticator::create({fj::issuer_config(path)}, errors);
  GERBANG_FUZZ_CHECK((a == nullptr) == !errors.empty());
  return 0;
}
