// Rate limiting per consumer / client IP / route (or combinations), several rules per route, token buckets
// kept per worker in a bounded LRU (memory bounded under IP spraying), or shared through a CounterBackend.
// Denials answer 429 with Retry-After and RateLimit-Policy/RateLimit (draft-ietf-httpapi-ratelimit-headers).
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

// Per-worker rate-limit state (bucket tables for every route, the optional shared backend); the PolicySet's
// WorkerState owns one of these, and the stage finds it via RequestContext::worker_slot (see
// ratelimit_state(ctx) in ratelimit_stage.cpp).
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
