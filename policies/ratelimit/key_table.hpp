// A bounded LRU map from a rate-limit key to its TokenBucket, one per worker.
//
// Memory is fixed by `max_keys`, whatever the traffic: a flood from millions of distinct (spoofed-looking)
// client addresses evicts the least recently used buckets instead of growing the table. An evicted bucket
// was idle longer than every other one; when its key comes back it starts full, which is what a bucket idle
// that long would be anyway unless the table is far too small for the live key set (then size max_keys up).
//
// Keys are stored as a 128-bit keyed hash (SipHash-2-4 with 128-bit output, libsodium's
// crypto_shorthash_siphashx24) with a per-table random key, not as strings: every entry has the same size
// (32 bytes), and an attacker who cannot see the key cannot craft two keys that share a bucket. The chance
// of an accidental collision among 10^6 live keys is ~10^-27.
//
// Layout: entries in one array reserved up front (stable addresses, no reallocation), an intrusive doubly
// linked LRU list through them by index, and an open-addressing index (linear probing, backward-shift
// deletion, load <= 1/2). Lookup, insert, touch and evict are O(1).
//
// THREAD SAFETY: none; owned and used by one worker thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "policies/ratelimit/token_bucket.hpp"

namespace gerbang::policies::ratelimit {

struct KeyHash {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const KeyHash&, const KeyHash&) = default;
};

using KeyTableSeed = std::array<std::uint8_t, 16>;

class KeyTable {
 public:
  static constexpr std::uint32_t kMinKeys = 16;  // a route's limits must fit at once

  // max_keys is clamped to [kMinKeys, 2^30]. Without a seed, a random one is drawn (libsodium CSPRNG).
  explicit KeyTable(std::uint32_t max_keys, std::optional<KeyTableSeed> seed = std::nullopt);

  KeyHash hash(std::string_view key) const noexcept;

  // The bucket for `h`, inserted (full) if absent, evicting the least recently used entry when the table is
  // full; marks it most recently used. The reference stays valid until the next get() that inserts.
  TokenBucket& get(const KeyHash& h);
  TokenBucket& get(std::string_view key) { return get(hash(key)); }
  // The bucket if present (marks it most recently used), else null.
  TokenBucket* find(const KeyHash& h) noexcept;

  std::size_t size() const noexcept { return size_; }
  std::size_t max_keys() const noexcept { return max_keys_; }
  std::uint64_t evictions() const noexcept { return evictions_; }
  // Bytes held by the table's arrays (what max_keys bounds).
  std::size_t memory_bytes() const noexcept;

 private:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  struct Entry {
    KeyHash key;
    TokenBucket bucket;
    std::uint32_t prev = kNone;  // towards most recently used
    std::uint32_t next = kNone;  // towards least recently used
  };

  std::size_t home(const KeyHash& h) const noexcept { return static_cast<std::size_t>(h.lo) & mask_; }
  std::size_t locate(const KeyHash& h) const noexcept;  // index slot holding h, or the empty slot ending its probe
  void unlink(std::uint32_t e) noexcept;
  void push_front(std::uint32_t e) noexcept;
  void erase_slot(std::size_t slot) noexcept;

  KeyTableSeed seed_{};
  std::uint32_t max_keys_;
  std::vector<Entry> entries_;        // capacity max_keys_, never reallocated
  std::vector<std::uint32_t> index_;  // power of two >= 2 * max_keys_; kNone = empty
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  std::uint32_t head_ = kNone;  // most recently used
  std::uint32_t tail_ = kNone;  // least recently used
  std::uint64_t evictions_ = 0;
};

}  // namespace gerbang::policies::ratelimit
