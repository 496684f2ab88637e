// Authentication: who is calling. One stage per route that has an `auth:` block; it tries the route's methods
// (mtls, api_key, jwt) in the configured order.
//
// Decision rule (docs/config.md, "Authentication"):
//   * A method "has a credential" when the request carries one for it: a verified client certificate (mtls),
//     the API-key header (or ?api_key= where the route opts in) (api_key), an `Authorization: Bearer` header
//     (jwt). Methods not listed for the route are never looked at.
//   * The first listed method whose credential verifies wins.
//   * If credentials were presented and none verified: 401 authn.invalid_credential (also on anonymous routes).
//   * If none was presented: anonymous routes continue as Principal{anonymous}; others answer 401
//     authn.missing_credential with one WWW-Authenticate challenge per challengeable method (Bearer for jwt,
//     ApiKey for api_key; mTLS has no HTTP challenge).
// On success the stage writes ctx.principal and the identity headers for the upstream (identity_assertion.hpp),
// signed when identity.signing_key is configured. Failure details go to ctx.deny_detail only.
//
// THREAD SAFETY: AuthnIndex and the stage are immutable after building and shared by all workers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/request_context.hpp"
#include "policies/stage.hpp"

namespace gerbang::policies::authn {

// Everything authentication needs that is shared by all routes of a generation: the consumer table, the mTLS
// lookup maps, the API-key index, the JWT issuers and keys, and the identity signing key.
class AuthnIndex;

// Null with errors appended on failure (unreadable JWKS or signing key, duplicate API key ids, ...).
std::shared_ptr<const AuthnIndex> build_authn_index(const std::vector<ConsumerConfig>& consumers,
                                                    const AuthConfig& auth, const IdentityConfig& identity,
                                                    std::vector<std::string>& errors);

// The stage for a route with an `auth:` block.
std::unique_ptr<Stage> make_authn_stage(std::shared_ptr<const AuthnIndex> index, const RouteAuthConfig& route_auth);

}  // namespace gerbang::policies::authn
