#include "policies/ratelimit/token_bucket.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace gerbang::policies::ratelimit {
namespace {

using namespace std::chrono_literals;

// The fake clock: an arbitrary, non-zero starting instant advanced by hand.
struct FakeClock {
  Clock::time_point now = Clock::time_point{} + 1000h;
  void advance(Clock::duration d) { now += d; }
};

TEST(TokenBucket, IntervalIsPeriodOverRequestsRoundedUp) {
  EXPECT_EQ(BucketLimit::make(10, 1s, 0).interval_ns, 100'000'000);
  EXPECT_EQ(BucketLimit::make(1000, 1h, 0).interval_ns, 3'600'000'000);
  EXPECT_EQ(BucketLimit::make(3, 1s, 0).interval_ns, 333'333'334);  // never looser than configured
  EXPECT_EQ(BucketLimit::make(10, 1s, 0).burst, 10u);                // burst 0 = requests
  EXPECT_EQ(BucketLimit::make(10, 1s, 25).burst, 25u);
  EXPECT_EQ(BucketLimit::make(10, 1s, 25).tolerance_ns, 2'500'000'000);
  // Degenerate inputs are clamped rather than dividing by zero.
  EXPECT_EQ(BucketLimit::make(0, 0ns, 0).interval_ns, 1);
}

TEST(TokenBucket, FreshBucketAllowsBurstThenDenies) {
  FakeClock clock;
  const auto limit = BucketLimit::make(10, 1s, 0);
  TokenBucket b;
  EXPECT_EQ(b.available(limit, clock.now), 10u);
  for (std::uint64_t i = 0; i < 10; ++i) {
    const auto d = b.take(limit, clock.now);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
    EXPECT_EQ(d.retry_after, 0ns);
    EXPECT_EQ(d.reset, 100ms * static_cast<int>(i + 1));
  }
  const auto d = b.take(limit, clock.now);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.retry_after, 100ms);
  EXPECT_EQ(d.reset, 1s);
}

TEST(TokenBucket, RefillsOneTokenPerIntervalExactBoundary) {
  FakeClock clock;
  const auto limit = BucketLimit::make(10, 1s, 0);
  TokenBucket b;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.take(limit, clock.now).allowed);
  }
  clock.advance(100ms - 1ns);
  auto d = b.take(limit, clock.now);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1ns);
  clock.advance(1ns);  // exactly one interval later
  d = b.take(limit, clock.now);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_FALSE(b.take(limit, clock.now).allowed);
}

TEST(TokenBucket, FractionalRefillBecomesUsableWhenComplete) {
  FakeClock clock;
  const auto limit = BucketLimit::make(2, 1s, 1);  // one token every 500 ms, capacity 1
  TokenBucket b;
  ASSERT_TRUE(b.take(limit, clock.now).allowed);
  clock.advance(250ms);  // half a token back
  auto d = b.take(limit, clock.now);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 250ms);
  clock.advance(250ms);
  EXPECT_TRUE(b.take(limit, clock.now).allowed);
}

TEST(TokenBucket, SustainedRateMatchesConfiguredRate) {
  FakeClock clock;
  const auto limit = BucketLimit::make(5, 1s, 1);
  TokenBucket b;
  // Try every millisecond for 10 s: exactly 1 (initial) + 10 s * 5/s allowed.
  int allowed = 0;
  for (int ms = 0; ms <= 10'000; ++ms) {
    allowed += b.take(limit, clock.now).allowed ? 1 : 0;
    clock.advance(1ms);
  }
  EXPECT_EQ(allowed, 51);
}

TEST(TokenBucket, BurstLargerThanRate) {
  FakeClock clock;
  const auto limit = BucketLimit::make(1, 1s, 5);
  TokenBucket b;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(b.take(limit, clock.now).allowed);
  }
  EXPECT_FALSE(b.take(limit, clock.now).allowed);
  clock.advance(3s);
  EXPECT_EQ(b.available(limit, clock.now), 3u);
}

TEST(TokenBucket, LongIdleRefillsToCapacityOnly) {
  FakeClock clock;
  const auto limit = BucketLimit::make(10, 1s, 0);
  TokenBucket b;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.take(limit, clock.now).allowed);
  }
  clock.advance(24h * 365 * 10);  // ten years
  EXPECT_TRUE(b.is_full(clock.now));
  EXPECT_EQ(b.available(limit, clock.now), 10u);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) {
    allowed += b.take(limit, clock.now).allowed ? 1 : 0;
  }
  EXPECT_EQ(allowed, 10);  // no banked tokens beyond the burst
}

TEST(TokenBucket, DeniedRequestsCostNothing) {
  FakeClock clock;
  const auto limit = BucketLimit::make(1, 1s, 1);
  TokenBucket b;
  ASSERT_TRUE(b.take(limit, clock.now).allowed);
  for (int i = 0; i < 1000; ++i) {
    clock.advance(500us);
    ASSERT_FALSE(b.take(limit, clock.now).allowed);
  }
  clock.advance(500ms);  // 1 s after the first take, despite 1000 denied attempts in between
  EXPECT_TRUE(b.take(limit, clock.now).allowed);
}

TEST(TokenBucket, CheckDoesNotConsumeAndCommitDoes) {
  FakeClock clock;
  const auto limit = BucketLimit::make(2, 1s, 0);
  TokenBucket b;
  EXPECT_TRUE(b.check(limit, clock.now).allowed);
  EXPECT_EQ(b.available(limit, clock.now), 2u);
  b.commit(limit, clock.now);
  EXPECT_EQ(b.available(limit, clock.now), 1u);
}

TEST(TokenBucket, ClockGoingBackwardsNeverCreatesTokens) {
  FakeClock clock;
  const auto limit = BucketLimit::make(10, 1s, 0);
  TokenBucket b;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.take(limit, clock.now).allowed);
  }
  const auto earlier = clock.now - 1h;
  EXPECT_FALSE(b.take(limit, earlier).allowed);
  EXPECT_EQ(b.available(limit, earlier), 0u);
  // Time resuming at the later instant behaves as if the earlier call never happened.
  clock.advance(100ms);
  EXPECT_TRUE(b.take(limit, clock.now).allowed);
}

TEST(TokenBucket, ExtremeLimitsDoNotOverflow) {
  FakeClock clock;
  // 1/year with an absurd burst: the tolerance saturates at ~73 years (int64 ns / 4) instead of wrapping.
  const auto huge = BucketLimit::make(1, 24h * 365, ~0ull);
  EXPECT_EQ(huge.tolerance_ns, std::numeric_limits<std::int64_t>::max() / 4);
  TokenBucket b;
  for (int i = 0; i < 73; ++i) {  // floor(73.1 years / 1 year)
    ASSERT_TRUE(b.take(huge, clock.now).allowed) << i;
  }
  EXPECT_FALSE(b.take(huge, clock.now).allowed);
  const auto fast = BucketLimit::make(~0ull, 1s, 0);  // interval clamps to 1 ns
  TokenBucket c;
  EXPECT_TRUE(c.take(fast, clock.now).allowed);
  EXPECT_EQ(fast.interval_ns, 1);
}

}  // namespace
}  // namespace gerbang::policies::ratelimit
