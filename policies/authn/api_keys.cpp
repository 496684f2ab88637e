#include "policies/authn/api_keys.hpp"

namespace gerbang::policies::authn {

bool ApiKeyIndex::add(std::string_view id, std::string_view hash, std::size_t consumer, std::string& error) {
  if (!is_api_key_id(id)) {
    error = "API key id \"" + std::string(id) + "\" must match [a-z0-9]{8,32}";
    return false;
  }
  auto digest = parse_api_key_hash(hash);
  if (!digest) {
    error = "API key hash for id \"" + std::string(id) + "\" must be \"blake2b:\" and 64 lower-case hex digits";
    return false;
  }
  if (!by_id_.emplace(std::string(id), Entry{*digest, consumer}).second) {
    error = "API key id \"" + std::string(id) + "\" is used twice";
    return false;
  }
  return true;
}

ApiKeyIndex::Result ApiKeyIndex::verify(std::string_view presented_key) const noexcept {
  Result r;
  auto parts = split_api_key(presented_key);
  if (!parts) return r;  // malformed: shape only, nothing secret-dependent
  r.id = parts->id;
  const auto digest = api_key_digest(parts->id, parts->secret);
  auto it = by_id_.find(parts->id);
  // An unknown id still pays for the comparison, so timing tells nothing beyond "well-formed".
  static const ApiKeyDigest kNoKey{};
  const ApiKeyDigest& want = it == by_id_.end() ? kNoKey : it->second.digest;
  const bool equal = crypto_verify_32(digest.data(), want.data()) == 0;
  if (it == by_id_.end()) {
    r.outcome = Outcome::unknown_id;
  } else if (!equal) {
    r.outcome = Outcome::wrong_secret;
  } else {
    r.outcome = Outcome::ok;
    r.consumer = it->second.consumer;
  }
  return r;
}

}  // namespace gerbang::policies::authn
