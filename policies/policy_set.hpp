// All policy stages of one configuration generation, assembled per route in the fixed order
// ip filter → authn → authz → ratelimit (DESIGN.md §2), plus per-listener IP filters.
//
// THREAD SAFETY: built once per generation, then read-only and shared by all workers. Per-worker mutable
// state (rate-limit buckets, the shared-counter backend connection) lives in a WorkerState that each worker
// creates for itself and passes to the stages through RequestContext::worker_slot.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/request_context.hpp"
#include "policies/stage.hpp"
#include "policies/waf/waf_config.hpp"

namespace gerbang::policies {

namespace ratelimit { class CounterBackend; }

// Opaque per-worker state; the gateway only owns it and hands its address to the stages.
class WorkerState {
 public:
  virtual ~WorkerState() = default;
};

class PolicySet {
 public:
  struct RouteInput {
    std::string name;
    const RoutePolicyConfig* policy = nullptr;
    const WafRouteConfig* waf = nullptr;  // null or mode off = no WAF stage
  };
  struct Inputs {
    const std::vector<ConsumerConfig>* consumers = nullptr;
    const AuthConfig* auth = nullptr;
    const IdentityConfig* identity = nullptr;
    const RateLimitBackendConfig* ratelimit = nullptr;
    std::vector<RouteInput> routes;                  // index = route index
    std::vector<const IpFilterConfig*> listeners;    // index = listener index
    const WafGlobalConfig* waf = nullptr;       // CRS location and extra rules (defaults when null)
  };

  // Builds every stage (loads JWKS files and the identity signing key, indexes consumers and API keys).
  // Null with errors appended (naming route/consumer/file) on failure.
  static std::unique_ptr<PolicySet> create(const Inputs& inputs, std::vector<std::string>& errors);
  virtual ~PolicySet() = default;

  // Stages for a route, in order. May be empty (an open route).
  virtual std::span<const Stage* const> route_stages(std::size_t route) const = 0;
  // Listener-wide IP filter on the effective client address; next() when allowed.
  virtual Verdict check_listener(std::size_t listener, const IpAddress& client) const = 0;
  // Per-worker state. `backend` is the shared-counter backend for Redis-backed limits (null = local only).
  virtual std::unique_ptr<WorkerState> make_worker_state(std::unique_ptr<ratelimit::CounterBackend> backend) const = 0;
  // What an operator may want to know about the build (logged at start and on reload): per WAF route, how
  // many rules its compiled set leaves out, or why none.
  virtual std::span<const std::string> notes() const = 0;
};

}  // namespace gerbang::policies
