#include "policies/ratelimit/key_table.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace gerbang::policies::ratelimit {

KeyTable::KeyTable(std::uint32_t max_keys, std::optional<KeyTableSeed> seed)
    : max_keys_(std::clamp<std::uint32_t>(max_keys, kMinKeys, 1u << 30)) {
  static_assert(crypto_shorthash_siphashx24_KEYBYTES == sizeof(KeyTableSeed));
  static_assert(crypto_shorthash_siphashx24_BYTES == sizeof(KeyHash));
  if (seed) {
    seed_ = *seed;
  } else {
    randombytes_buf(seed_.data(), seed_.size());
  }
  // Reserving the full capacity up front keeps bucket references stable; the pages are only touched as
  // entries are added, so an idle worker with a large max_keys costs address space, not memory.
  entries_.reserve(max_keys_);
  std::size_t n = 1;
  while (n < 2 * static_cast<std::size_t>(max_keys_)) {
    n <<= 1;
  }
  index_.assign(n, kNone);
  mask_ = n - 1;
}

KeyHash KeyTable::hash(std::string_view key) const noexcept {
  std::array<unsigned char, crypto_shorthash_siphashx24_BYTES> out{};
  crypto_shorthash_siphashx24(out.data(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                              seed_.data());
  KeyHash h;
  std::memcpy(&h.lo, out.data(), 8);
  std::memcpy(&h.hi, out.data() + 8, 8);
  return h;
}

std::size_t KeyTable::memory_bytes() const noexcept {
  return entries_.capacity() * sizeof(Entry) + index_.capacity() * sizeof(std::uint32_t) + sizeof(*this);
}

std::size_t KeyTable::locate(const KeyHash& h) const noexcept {
  std::size_t slot = home(h);
  while (index_[slot] != kNone && !(entries_[index_[slot]].key == h)) {
    slot = (slot + 1) & mask_;  // load <= 1/2, so an empty slot always ends the probe
  }
  return slot;
}

void KeyTable::unlink(std::uint32_t e) noexcept {
  Entry& x = entries_[e];
  if (x.prev != kNone) {
    entries_[x.prev].next = x.next;
  } else {
    head_ = x.next;
  }
  if (x.next != kNone) {
    entries_[x.next].prev = x.prev;
  } else {
    tail_ = x.prev;
  }
  x.prev = x.next = kNone;
}

void KeyTable::push_front(std::uint32_t e) noexcept {
  Entry& x = entries_[e];
  x.prev = kNone;
  x.next = head_;
  if (head_ != kNone) {
    entries_[head_].prev = e;
  }
  head_ = e;
  if (tail_ == kNone) {
    tail_ = e;
  }
}

// Backward-shift deletion for linear probing (Knuth 6.4, Algorithm R): no tombstones, so probe lengths do
// not degrade under the constant insert/evict churn of an address flood.
void KeyTable::erase_slot(std::size_t hole) noexcept {
  std::size_t j = hole;
  for (;;) {
    j = (j + 1) & mask_;
    if (index_[j] == kNone) {
      break;
    }
    const std::size_t k = home(entries_[index_[j]].key);
    // Move entry j into the hole unless its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (!stays) {
      index_[hole] = index_[j];
      hole = j;
    }
  }
  index_[hole] = kNone;
}

TokenBucket* KeyTable::find(const KeyHash& h) noexcept {
  const std::size_t slot = locate(h);
  const std::uint32_t e = index_[slot];
  if (e == kNone) {
    return nullptr;
  }
  if (head_ != e) {
    unlink(e);
    push_front(e);
  }
  return &entries_[e].bucket;
}

TokenBucket& KeyTable::get(const KeyHash& h) {
  std::size_t slot = locate(h);
  std::uint32_t e = index_[slot];
  if (e != kNone) {
    if (head_ != e) {
      unlink(e);
      push_front(e);
    }
    return entries_[e].bucket;
  }
  if (size_ < max_keys_) {
    e = static_cast<std::uint32_t>(entries_.size());
    entries_.emplace_back();  // within the reserved capacity: no reallocation
    ++size_;
  } else {
    // Evict the least recently used entry and reuse its storage.
    e = tail_;
    erase_slot(locate(entries_[e].key));
    unlink(e);
    ++evictions_;
    slot = locate(h);  // the shift may have moved the probe chain
  }
  Entry& x = entries_[e];
  x.key = h;
  x.bucket = TokenBucket{};
  index_[slot] = e;
  push_front(e);
  return x.bucket;
}

}  // namespace gerbang::policies::ratelimit
