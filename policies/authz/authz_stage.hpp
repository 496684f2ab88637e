// Authorization: may this principal call this route with this method? Built for every route that has an
// `auth:` block; runs after authn.
//
// A request is allowed when at least one `allow` rule matches, else 403 authz.denied (default deny: a route
// with `auth` and no `allow` denies everyone, and the loader warns about it). A rule matches when
//   (the principal's consumer id is in `consumers`, or one of its groups is in `groups`)
//   and (`methods` is empty or holds the request method).
// Two reserved entries in `consumers` (consumer ids cannot contain '*', so they never clash):
//   "*authenticated*"  any principal that presented a verified credential (mtls, api_key or jwt), including
//                      JWT subjects accepted through allow_unknown_subjects;
//   "*anonymous*"      an anonymous principal (a request without credential on a route with anonymous: true).
// Anonymous principals match nothing else: they have no consumer id and no groups.
//
// THREAD SAFETY: immutable after construction.
#pragma once

#include <memory>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/stage.hpp"

namespace gerbang::policies::authz {

inline constexpr std::string_view any_authenticated = "*authenticated*";
inline constexpr std::string_view anonymous = "*anonymous*";

std::unique_ptr<Stage> make_authz_stage(const std::vector<AllowRule>& rules);

}  // namespace gerbang::policies::authz
