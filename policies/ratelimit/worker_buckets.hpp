// Per-worker rate-limit state: the bounded bucket table shared by every route's limits (keys carry the route
// and rule), the optional shared-counter backend (Redis) for this worker, the module's counters, and a
// rate-limited warning sink. The PolicySet's WorkerState owns one (via WorkerBucketsPtr) and exposes it
// through HasWorkerBuckets; the rate-limit stage reaches it through RequestContext::worker_slot.
//
// THREAD SAFETY: owned and used by one worker thread. RateLimitStats may be read from any thread (a /metrics
// scrape), with relaxed loads, like gateway/stats.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/ratelimit/counter_backend.hpp"
#include "policies/ratelimit/key_table.hpp"

namespace gerbang::policies::ratelimit {

// Single-writer counter (its worker thread); readable from any thread.
class RateCounter {
 public:
  void inc() noexcept { v_.store(v_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Every rate-limit counter of one worker (STYLE.md §18). Suggested metric names in comments.
struct RateLimitStats {
  RateCounter allowed;              // gerbang_ratelimit_allowed_total
  RateCounter denied;               // gerbang_ratelimit_denied_total (429)
  RateCounter shared_decisions;     // gerbang_ratelimit_shared_decisions_total (answered by the backend)
  RateCounter backend_failures;     // gerbang_ratelimit_backend_failures_total (take() → nullopt, or unhealthy)
  RateCounter degraded;             // gerbang_degraded_total{stage="ratelimit"}: decided locally instead
  RateCounter backend_unavailable;  // gerbang_ratelimit_backend_unavailable_total (503, on_failure: deny)
};

class WorkerBuckets {
 public:
  using NowFn = std::function<Clock::time_point()>;
  using WarnFn = std::function<void(std::string_view)>;
  static constexpr std::chrono::seconds kWarnInterval{10};

  // `shared` may be null: then every decision is local. `seed` fixes the key table's hash key (tests);
  // `now` replaces steady_clock::now (tests).
  WorkerBuckets(const RateLimitBackendConfig& config, std::unique_ptr<CounterBackend> shared,
                std::optional<KeyTableSeed> seed = std::nullopt, NowFn now = {});

  const RateLimitBackendConfig& config() const noexcept { return config_; }
  CounterBackend* shared() noexcept { return shared_.get(); }
  // The bucket table, created on first use (a worker that never sees a limited route allocates nothing).
  KeyTable& table();
  bool has_table() const noexcept { return table_ != nullptr; }
  Clock::time_point now() const { return now_ ? now_() : Clock::now(); }
  RateLimitStats& stats() noexcept { return stats_; }
  const RateLimitStats& stats() const noexcept { return stats_; }

  // Where degraded-mode warnings go (the gateway plugs in its logger). warn() passes at most one message per
  // kWarnInterval and says how many were suppressed, so an outage cannot flood the log (STYLE.md §17).
  void set_warning_sink(WarnFn sink) { warn_ = std::move(sink); }
  void warn(std::string_view message);

  // Scratch space for the synchronous path (never held across a suspension).
  std::string& key_scratch() noexcept { return key_scratch_; }
  std::vector<KeyHash>& hash_scratch() noexcept { return hash_scratch_; }

 private:
  RateLimitBackendConfig config_;
  std::unique_ptr<CounterBackend> shared_;
  std::optional<KeyTableSeed> seed_;
  NowFn now_;
  std::unique_ptr<KeyTable> table_;
  RateLimitStats stats_;
  WarnFn warn_;
  std::optional<Clock::time_point> last_warn_;
  std::uint64_t suppressed_warnings_ = 0;
  std::string key_scratch_;
  std::vector<KeyHash> hash_scratch_;
};

}  // namespace gerbang::policies::ratelimit
