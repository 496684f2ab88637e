// Helpers shared by the libFuzzer targets: a check that aborts with a message (so the finding names the
// broken invariant, not just a line), and string views over the fuzzer's bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define GERBANG_FUZZ_CHECK(cond)                                                                 \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace gerbang::fuzz {

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const char*>(data), size};
}

// A deterministic chunk-size schedule derived from the input, so splitting is varied but reproducible.
class Chunker {
 public:
  explicit Chunker(std::string_view seed) noexcept {
    for (unsigned char c : seed) state_ = (state_ ^ c) * 0x100000001b3ULL;
  }
  std::size_t next() noexcept {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    static constexpr std::size_t sizes[] = {1, 2, 3, 5, 8, 16, 64, 512, 4096};
    return sizes[state_ % (sizeof(sizes) / sizeof(sizes[0]))];
  }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace gerbang::fuzz
