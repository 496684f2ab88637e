// Pure rate-limit arithmetic: a token bucket expressed as GCRA (the Generic Cell Rate Algorithm, ITU-T
// I.371 / the "virtual scheduling" form), which keeps one number per key instead of (tokens, last refill).
//
// A limit of `requests` per `period` with capacity `burst` emits one token every
// interval = period / requests (rounded UP to whole nanoseconds, so a limit is never looser than configured;
// the error is below 1 ns per request). The state is the theoretical arrival time `tat`: the instant the
// bucket would be full again. Refill is therefore continuous ("fractional"): half an interval after a take,
// half a token is back, and it becomes usable once it completes.
//
//   base      = max(tat, now)              a bucket idle for long is simply full (no overflow, no catch-up)
//   debt      = base + interval - now      how far ahead of "full" this request would put the bucket
//   allowed   ⇔ debt <= burst * interval
//   remaining = (burst * interval - debt) / interval (floor)        tokens left after this request
//   reset     = allowed ? debt : base - now                          until the bucket is full again
//   retry     = denied  ? debt - burst * interval : 0                until one token is available
//
// Time comes in as a parameter (no clock is read here), so tests drive it with a fake clock. steady_clock
// never goes backwards, but if a caller passes an earlier `now` than before the bucket only looks emptier
// (debt grows): no tokens are ever created by time going backwards, and nothing overflows.
//
// The same math runs inside Redis (gateway/redis_backend.cpp) with server time, in microseconds.
//
// THREAD SAFETY: none needed; a TokenBucket is 8 bytes of per-worker state, a BucketLimit is immutable.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace gerbang::policies::ratelimit {

using Clock = std::chrono::steady_clock;

struct BucketLimit {
  std::uint64_t requests = 1;             // per period, >= 1
  std::chrono::nanoseconds period{1};     // > 0
  std::uint64_t burst = 1;                // capacity, >= 1
  std::int64_t interval_ns = 1;           // ceil(period / requests), >= 1
  std::int64_t tolerance_ns = 1;          // burst * interval, saturated

  // burst 0 means "= requests"; requests 0 and period <= 0 are clamped to 1 (config validation rejects them).
  static BucketLimit make(std::uint64_t requests, std::chrono::nanoseconds period, std::uint64_t burst) noexcept;
};

struct BucketDecision {
  bool allowed = false;
  std::uint64_t remaining = 0;             // tokens left after this request (0 when denied)
  std::chrono::nanoseconds retry_after{0}; // denied: until one token is available; allowed: 0
  std::chrono::nanoseconds reset{0};       // until the bucket is full again
};

class TokenBucket {
 public:
  // What take() would decide, without changing the bucket (lets a route with several limits check all of
  // them before consuming from any).
  BucketDecision check(const BucketLimit& limit, Clock::time_point now) const noexcept;
  // Consumes one token if allowed; a denied request costs nothing.
  BucketDecision take(const BucketLimit& limit, Clock::time_point now) noexcept;
  // Consumes one token unconditionally after check() said allowed (same limit, same now).
  void commit(const BucketLimit& limit, Clock::time_point now) noexcept;

  // Tokens available at `now` without taking any (for tests and diagnostics).
  std::uint64_t available(const BucketLimit& limit, Clock::time_point now) const noexcept;
  bool is_full(Clock::time_point now) const noexcept;

 private:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();
  std::int64_t tat_ns_ = kNever;  // theoretical arrival time, ns since the clock's epoch; kNever = full
};

}  // namespace gerbang::policies::ratelimit
