#include "crypto/sha256.hpp"

#include <cstdio>
#include <cstdlib>

#include <openssl/err.h>
#include <openssl/evp.h>

namespace gerbang::crypto {

namespace {

[[noreturn]] void fatal(const char* what) noexcept {
  unsigned long e = ERR_get_error();
  char buf[256] = "no OpenSSL error queued";
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
  }
  std::fprintf(stderr, "gerbang: SHA-256: %s failed: %s\n", what, buf);
  ERR_clear_error();
  std::abort();
}

// Fetched once: in OpenSSL 3 EVP_sha256() makes every init look the implementation up again, which
// costs more than hashing a 65-byte Merkle node. Never freed: it lives as long as the process.
const EVP_MD* sha256_md() noexcept {
  static const EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) {
      fatal("EVP_MD_fetch(SHA256)");
    }
    return m;
  }();
  return md;
}

EVP_MD_CTX* new_ctx() noexcept {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) {
    fatal("EVP_MD_CTX_new");
  }
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1) {
    fatal("EVP_DigestInit_ex2");
  }
  return ctx;
}

void update_ctx(EVP_MD_CTX* ctx, const void* data, std::size_t n) noexcept {
  if (n != 0 && EVP_DigestUpdate(ctx, data, n) != 1) {
    fatal("EVP_DigestUpdate");
  }
}

Hash finish_ctx(EVP_MD_CTX* ctx) noexcept {
  Hash out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) {
    fatal("EVP_DigestFinal_ex");
  }
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1) {
    fatal("EVP_DigestInit_ex2");
  }
  return out;
}

// One context per thread, reused by the one-shot functions: Merkle hashing calls them for every leaf
// and node, and a context allocation per call would dominate.
struct ThreadCtx {
  EVP_MD_CTX* ctx = new_ctx();
  ThreadCtx() = default;
  ThreadCtx(const ThreadCtx&) = delete;
  ThreadCtx& operator=(const ThreadCtx&) = delete;
  ~ThreadCtx() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

Hash sha256(std::span<const std::uint8_t> data) noexcept {
  thread_local ThreadCtx t;
  update_ctx(t.ctx, data.data(), data.size());
  return finish_ctx(t.ctx);
}

Hash sha256(std::string_view data) noexcept {
  return sha256(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

Sha256::Sha256() noexcept : ctx_(new_ctx()) {}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

Sha256::Sha256(Sha256&& other) noexcept : ctx_(other.ctx_) { other.ctx_ = nullptr; }

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = other.ctx_;
    other.ctx_ = nullptr;
  }
  return *this;
}

Sha256& Sha256::update(std::span<const std::uint8_t> data) noexcept {
  update_ctx(ctx_, data.data(), data.size());
  return *this;
}

Sha256& Sha256::update(std::string_view data) noexcept {
  update_ctx(ctx_, data.data(), data.size());
  return *this;
}

Hash Sha256::finish() noexcept { return finish_ctx(ctx_); }

}  // namespace gerbang::crypto
