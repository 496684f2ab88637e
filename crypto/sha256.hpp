// SHA-256 through OpenSSL EVP (SHA-NI makes it several times faster than libsodium's portable code here;
// DESIGN.md §4.2). One-shot functions for the Merkle tree's small inputs, and a streaming Sha256 class.
//
// THREAD SAFETY: the free functions are safe from any thread (each thread reuses its own EVP context).
// A Sha256 object is not synchronised; use one per thread.
// ERRORS: none reported. EVP SHA-256 only fails on allocation failure or a broken OpenSSL install,
// which are treated as fatal (abort with a message), per STYLE.md §2 item 5.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

// OpenSSL's EVP_MD_CTX, forward-declared so OpenSSL headers stay out of this header.
struct evp_md_ctx_st;

namespace gerbang::crypto {

inline constexpr std::size_t sha256_bytes = 32;
using Hash = std::array<std::uint8_t, sha256_bytes>;

Hash sha256(std::span<const std::uint8_t> data) noexcept;
Hash sha256(std::string_view data) noexcept;

// Incremental hashing: update() any number of times, then finish(). finish() resets the object, so it
// can hash the next message.
class Sha256 {
 public:
  Sha256() noexcept;
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  Sha256& update(std::span<const std::uint8_t> data) noexcept;
  Sha256& update(std::string_view data) noexcept;
  Hash finish() noexcept;

 private:
  evp_md_ctx_st* ctx_;  // null only after a move
};

}  // namespace gerbang::crypto
