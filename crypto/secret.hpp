// SecretBytes<N>: fixed-size secret material (private keys, seeds) in sodium_malloc memory.
//
// THREAD SAFETY: an object is not synchronised; distinct objects may be used from different threads.
// PRECONDITION: sodium_init() has succeeded (crypto::init_sodium() in main) before the first
// SecretBytes is constructed: sodium_malloc needs the page size that sodium_init records.
// LIFETIME: data()/bytes() point into this object's allocation and die with it (or with a move from it).
//
// Why a type and not std::array or a vector with a secure allocator (STYLE.md §1.3, §2 item 13):
// sodium_malloc places the bytes between guard pages behind a canary and mlock()s them, and sodium_free
// wipes them before releasing. The type is move-only, so a key is never silently copied into ordinary
// memory. It has no operator<<, and its fmt::formatter prints "<redacted>", so logging it by mistake
// cannot leak it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <fmt/format.h>

namespace gerbang::crypto {

namespace detail {
// Zero-filled sodium_malloc allocation of n bytes. Aborts on failure: running out of locked memory
// for a key is the out-of-memory case that STYLE.md §2 item 5 lets us crash on.
void* secret_alloc(std::size_t n) noexcept;
// sodium_free: checks the canary, wipes, unlocks and unmaps. Null is a no-op.
void secret_free(void* p) noexcept;
}  // namespace detail

template <std::size_t N>
class SecretBytes {
  static_assert(N > 0, "SecretBytes needs at least one byte");

 public:
  // Zero-filled.
  SecretBytes() : p_(static_cast<std::uint8_t*>(detail::secret_alloc(N))) {}
  ~SecretBytes() { detail::secret_free(p_); }

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // A moved-from SecretBytes owns nothing; only destruction and assignment are valid on it.
  SecretBytes(SecretBytes&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      detail::secret_free(p_);
      p_ = other.p_;
      other.p_ = nullptr;
    }
    return *this;
  }

  static constexpr std::size_t size() noexcept { return N; }
  std::uint8_t* data() noexcept { return p_; }
  const std::uint8_t* data() const noexcept { return p_; }
  std::span<std::uint8_t, N> bytes() noexcept { return std::span<std::uint8_t, N>(p_, N); }
  std::span<const std::uint8_t, N> bytes() const noexcept { return std::span<const std::uint8_t, N>(p_, N); }
  // False only for a moved-from object.
  bool valid() const noexcept { return p_ != nullptr; }

 private:
  std::uint8_t* p_;
};

}  // namespace gerbang::crypto

// Formatting a secret prints a placeholder, never the bytes.
template <std::size_t N>
struct fmt::formatter<gerbang::crypto::SecretBytes<N>> {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) { return ctx.begin(); }
  template <typename FormatContext>
  auto format(const gerbang::crypto::SecretBytes<N>&, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "<redacted>");
  }
};
