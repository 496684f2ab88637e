#include "policies/ratelimit/key_table.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gerbang::policies::ratelimit {
namespace {

using namespace std::chrono_literals;

constexpr KeyTableSeed kSeed{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// Appending instead of named("k", i) sidesteps a GCC 12 -Wrestrict false positive.
std::string named(const char* prefix, std::size_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

std::string ip_key(std::uint32_t i) {
  return std::to_string((i >> 24) & 255) + "." + std::to_string((i >> 16) & 255) + "." +
         std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
}

TEST(KeyTable, SameKeySameBucketDifferentKeysDifferentBuckets) {
  KeyTable t(100, kSeed);
  TokenBucket& a = t.get("alice");
  TokenBucket& b = t.get("bob");
  EXPECT_NE(&a, &b);
  EXPECT_EQ(&a, &t.get("alice"));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(t.hash("carol")), nullptr);
  EXPECT_EQ(t.find(t.hash("bob")), &b);
}

TEST(KeyTable, StateSurvivesLookups) {
  KeyTable t(100, kSeed);
  const auto limit = BucketLimit::make(1, 1s, 1);
  const Clock::time_point now{1000h};
  ASSERT_TRUE(t.get("k").take(limit, now).allowed);
  for (int i = 0; i < 50; ++i) {
    t.get(named("other", i));
  }
  EXPECT_FALSE(t.get("k").take(limit, now).allowed);
}

TEST(KeyTable, EvictsLeastRecentlyUsed) {
  KeyTable t(KeyTable::kMinKeys, kSeed);
  const std::size_t n = t.max_keys();
  for (std::size_t i = 0; i < n; ++i) {
    t.get(named("k", i));
  }
  t.get("k0");  // touch: k1 is now the oldest
  t.get("new");
  EXPECT_EQ(t.size(), n);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_NE(t.find(t.hash("k0")), nullptr);
  EXPECT_EQ(t.find(t.hash("k1")), nullptr);
  EXPECT_NE(t.find(t.hash("k2")), nullptr);
  EXPECT_NE(t.find(t.hash("new")), nullptr);
}

TEST(KeyTable, EvictedKeyComesBackFull) {
  KeyTable t(KeyTable::kMinKeys, kSeed);
  const auto limit = BucketLimit::make(1, 1h, 1);
  const Clock::time_point now{1000h};
  ASSERT_TRUE(t.get("victim").take(limit, now).allowed);
  for (std::uint32_t i = 0; i < t.max_keys(); ++i) {
    t.get(ip_key(i));
  }
  EXPECT_EQ(t.find(t.hash("victim")), nullptr);
  EXPECT_TRUE(t.get("victim").take(limit, now).allowed);
}

TEST(KeyTable, MillionKeySprayStaysBoundedAndHotKeySurvives) {
  KeyTable t(10'000, kSeed);
  const auto limit = BucketLimit::make(1, 1h, 3);
  const Clock::time_point now{1000h};
  ASSERT_TRUE(t.get("hot-consumer").take(limit, now).allowed);  // 2 tokens left
  const std::size_t bytes_at_start = t.memory_bytes();
  std::size_t bytes_when_full = 0;
  for (std::uint32_t i = 0; i < 1'000'000; ++i) {
    t.get(ip_key(0x0a000000u + i));
    if (i % 1000 == 0) {
      t.get("hot-consumer");  // a consumer that keeps calling while the flood goes on
    }
    if (i == 10'000) {
      bytes_when_full = t.memory_bytes();
    }
  }
  EXPECT_EQ(t.size(), 10'000u);
  EXPECT_EQ(t.evictions(), 1'000'000u + 1 - 10'000u);
  EXPECT_EQ(t.memory_bytes(), bytes_at_start);  // nothing grows after construction
  EXPECT_EQ(t.memory_bytes(), bytes_when_full);
  EXPECT_LT(t.memory_bytes(), 10'000u * 32 + 32'768u * 4 + 1024);  // 32-byte entries + index
  // The hot key kept its state (one token used), it was not evicted and recreated.
  TokenBucket* hot = t.find(t.hash("hot-consumer"));
  ASSERT_NE(hot, nullptr);
  EXPECT_EQ(hot->available(limit, now), 2u);
  // Every recent key of the flood is still findable (the index stayed consistent through 990,001 evictions).
  for (std::uint32_t i = 1'000'000 - 5000; i < 1'000'000; ++i) {
    ASSERT_NE(t.find(t.hash(ip_key(0x0a000000u + i))), nullptr) << i;
  }
  EXPECT_EQ(t.find(t.hash(ip_key(0x0a000000u))), nullptr);
}

TEST(KeyTable, SeedChangesHashes) {
  KeyTable a(100, kSeed);
  KeyTableSeed other = kSeed;
  other[0] ^= 1;
  KeyTable b(100, other);
  EXPECT_EQ(a.hash("x"), KeyTable(100, kSeed).hash("x"));
  EXPECT_NE(a.hash("x"), b.hash("x"));
}

TEST(KeyTable, MaxKeysIsClamped) {
  KeyTable t(0, kSeed);
  EXPECT_EQ(t.max_keys(), KeyTable::kMinKeys);
}

}  // namespace
}  // namespace gerbang::policies::ratelimit
