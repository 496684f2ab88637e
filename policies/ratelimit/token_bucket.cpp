#include "policies/ratelimit/token_bucket.hpp"

#include <algorithm>

namespace gerbang::policies::ratelimit {

namespace {

// Caps the tolerance so that base + interval stays far from overflow for any plausible clock value
// (a quarter of int64 nanoseconds is ~73 years).
constexpr std::int64_t kMaxTolerance = std::numeric_limits<std::int64_t>::max() / 4;

std::int64_t ns_of(Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

BucketLimit BucketLimit::make(std::uint64_t requests, std::chrono::nanoseconds period, std::uint64_t burst) noexcept {
  BucketLimit l;
  l.requests = std::max<std::uint64_t>(requests, 1);
  l.period = std::max(period, std::chrono::nanoseconds{1});
  l.burst = burst == 0 ? l.requests : burst;
  const auto p = static_cast<std::uint64_t>(l.period.count());
  const std::uint64_t interval = p / l.requests + (p % l.requests != 0 ? 1 : 0);  // ceil: never looser
  l.interval_ns = static_cast<std::int64_t>(std::clamp<std::uint64_t>(interval, 1, kMaxTolerance));
  std::int64_t tol = 0;
  if (l.burst > static_cast<std::uint64_t>(kMaxTolerance) ||
      __builtin_mul_overflow(l.interval_ns, static_cast<std::int64_t>(l.burst), &tol) || tol > kMaxTolerance) {
    tol = kMaxTolerance;
  }
  l.tolerance_ns = tol;
  return l;
}

BucketDecision TokenBucket::check(const BucketLimit& limit, Clock::time_point now) const noexcept {
  const std::int64_t n = ns_of(now);
  const std::int64_t base = std::max(tat_ns_, n);
  const std::int64_t debt = base - n + limit.interval_ns;
  BucketDecision d;
  if (debt <= limit.tolerance_ns) {
    d.allowed = true;
    d.remaining = static_cast<std::uint64_t>((limit.tolerance_ns - debt) / limit.interval_ns);
    d.reset = std::chrono::nanoseconds{debt};
  } else {
    d.allowed = false;
    d.remaining = 0;
    d.retry_after = std::chrono::nanoseconds{debt - limit.tolerance_ns};
    d.reset = std::chrono::nanoseconds{base - n};
  }
  return d;
}

void TokenBucket::commit(const BucketLimit& limit, Clock::time_point now) noexcept {
  tat_ns_ = std::max(tat_ns_, ns_of(now)) + limit.interval_ns;
}

BucketDecision TokenBucket::take(const BucketLimit& limit, Clock::time_point now) noexcept {
  const BucketDecision d = check(limit, now);
  if (d.allowed) {
    commit(limit, now);
  }
  return d;
}

std::uint64_t TokenBucket::available(const BucketLimit& limit, Clock::time_point now) const noexcept {
  const std::int64_t n = ns_of(now);
  const std::int64_t debt = std::max(tat_ns_, n) - n;
  if (debt >= limit.tolerance_ns) {
    return 0;
  }
  return static_cast<std::uint64_t>((limit.tolerance_ns - debt) / limit.interval_ns);
}

bool TokenBucket::is_full(Clock::time_point now) const noexcept { return tat_ns_ <= ns_of(now); }

}  // namespace gerbang::policies::ratelimit
