#include "crypto/secret.hpp"

#include <cstdio>
#include <cstdlib>

#include <sodium.h>

namespace gerbang::crypto::detail {

void* secret_alloc(std::size_t n) noexcept {
  void* p = sodium_malloc(n);
  if (p == nullptr) {
    // Out of (lockable) memory, or sodium_init() was never called: both are fatal by design.
    std::fputs("gerbang: sodium_malloc failed (out of locked memory, or sodium_init not run)\n", stderr);
    std::abort();
  }
  sodium_memzero(p, n);
  return p;
}

void secret_free(void* p) noexcept {
  if (p != nullptr) {
    sodium_free(p);
  }
}

}  // namespace gerbang::crypto::detail
