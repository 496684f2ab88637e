// Known-answer tests for crypto::sha256 / crypto::Sha256 (FIPS 180-4 example messages, as published
// in NIST's SHA examples and RFC 6234 §8.5).
#include "crypto/sha256.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/sodium.hpp"

namespace gerbang::crypto {
namespace {

std::string hex(const Hash& h) { return hex_encode(h); }

struct Sha256Vector {
  std::string input;
  const char* digest;
};

const std::vector<Sha256Vector>& sha256_vectors() {
  static const std::vector<Sha256Vector> v = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  return v;
}

TEST(Sha256, OneShotKnownAnswers) {
  for (const auto& v : sha256_vectors()) {
    EXPECT_EQ(hex(sha256(v.input)), v.digest) << "input length " << v.input.size();
    EXPECT_EQ(hex(sha256(as_bytes(v.input))), v.digest) << "input length " << v.input.size();
  }
}

TEST(Sha256, StreamingMatchesOneShotForEveryChunkSize) {
  for (const auto& v : sha256_vectors()) {
    if (v.input.size() > 1000) {
      continue;  // the million-byte vector has its own test
    }
    for (std::size_t chunk = 1; chunk <= v.input.size() + 1; ++chunk) {
      Sha256 h;
      for (std::size_t i = 0; i < v.input.size(); i += chunk) {
        h.update(std::string_view(v.input).substr(i, chunk));
      }
      ASSERT_EQ(hex(h.finish()), v.digest) << "chunk " << chunk;
    }
  }
}

TEST(Sha256, StreamsOneMillionAs) {
  Sha256 h;
  const std::string block(1000, 'a');
  for (int i = 0; i < 1000; ++i) {
    h.update(as_bytes(block));
  }
  EXPECT_EQ(hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FinishResetsForTheNextMessage) {
  Sha256 h;
  h.update("garbage that must not leak into the next digest");
  (void)h.finish();
  EXPECT_EQ(hex(h.update("abc").finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(h.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, MoveKeepsTheState) {
  Sha256 a;
  a.update("ab");
  Sha256 b(std::move(a));
  b.update("c");
  EXPECT_EQ(hex(b.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 c;
  c = std::move(b);
  EXPECT_EQ(hex(c.update("abc").finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, EmptySpanWithNullData) {
  EXPECT_EQ(hex(sha256(std::span<const std::uint8_t>{})),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace gerbang::crypto
