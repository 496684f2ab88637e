// Rate limiting per consumer / client IP / route (or combinations), several rules per route, token buckets
// kept per worker in a bounded LRU (memory bounded under IP spraying), or shared through a CounterBackend.
//
// Keys: `consumer` is ctx.principal.consumer, or the client IP for anonymous requests (tagged differently, so
// a consumer named "10.0.0.1" never shares a bucket with that address); `client_ip` is
// ctx.request.client.text; `route` is the route name. A limit is always scoped to the route (and rule) that
// declares it: the parts only choose how that route's traffic is partitioned, so `key: [route]` (or an empty
// key) is one bucket for all of the route's traffic. Every rule of the route must allow.
//
// Headers follow draft-ietf-httpapi-ratelimit-headers-09 (March 2025; structured fields, RFC 8941):
//   RateLimit-Policy: "10/s";q=10;w=1, "1000/h";q=1000;w=3600     every rule of the route
//   RateLimit: "10/s";r=3;t=1                                      one rule: the most restrictive
// q = requests per window, w = the period in seconds (rounded up, at least 1), r = tokens left, t = seconds
// (rounded up) until the bucket is full again — or, on a 429, until the next request can pass (= Retry-After).
// A denial answers 429 `ratelimit.exceeded` with `Retry-After` (seconds, rounded up) and both fields for the
// rule that denied; a success puts both fields into ctx.response_headers.
//
// Modes: local (synchronous, per-worker buckets) or redis (is_async(): on_request_head_async co_awaits
// CounterBackend::take() per rule, stopping at the first denial). When the backend fails (take() → nullopt,
// or healthy() false) `on_failure` decides: `local` → the local buckets decide, counted as degraded with a
// rate-limited warning; `deny` → 503 `ratelimit.backend_unavailable` (fail closed, STYLE.md §16).
// Locally a route's rules are all checked before any consumes, so a request denied by one rule costs no token
// of another; through Redis, rules checked before the denying one have consumed their token.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/policy_set.hpp"
#include "policies/ratelimit/counter_backend.hpp"
#include "policies/stage.hpp"

namespace gerbang::policies::ratelimit {

// The stage for one route (null if `rules` is empty).
std::unique_ptr<Stage> make_ratelimit_stage(const std::string& route_name, std::size_t route_index,
                                            const std::vector<RateLimitRule>& rules,
                                            const RateLimitBackendConfig& backend);

// Per-worker rate-limit state (defined in worker_buckets.hpp: bucket table for every route, the optional
// shared backend, counters). The PolicySet's WorkerState owns one of these and implements HasWorkerBuckets;
// the gateway sets RequestContext::worker_slot to that `policies::WorkerState*`. Without it the stage fails
// closed (500 gateway.internal_error): a wiring bug must not silently disable limits.
class WorkerBuckets;
void destroy(WorkerBuckets*) noexcept;  // defined where WorkerBuckets is complete
struct WorkerBucketsDeleter {
  void operator()(WorkerBuckets* p) const noexcept { destroy(p); }
};
// Owning pointer usable (moved, destroyed) in any TU although WorkerBuckets is incomplete there.
using WorkerBucketsPtr = std::unique_ptr<WorkerBuckets, WorkerBucketsDeleter>;
// `shared` may be null (local mode, or redis mode without a backend: then every decision is local).
WorkerBucketsPtr make_worker_buckets(const RateLimitBackendConfig& backend, std::unique_ptr<CounterBackend> shared);

// The PolicySet's WorkerState must expose the buckets through this interface.
class HasWorkerBuckets {
 public:
  virtual ~HasWorkerBuckets() = default;
  virtual WorkerBuckets& buckets() = 0;
};

}  // namespace gerbang::policies::ratelimit
