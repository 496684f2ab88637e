// Known-answer and behaviour tests for crypto/secret.hpp and crypto/sodium.hpp.
// Ed25519 vectors: RFC 8032 §7.1 TEST 1, 2, 3 and TEST SHA(abc). Base64 vectors: RFC 4648 §10.
#include "crypto/sodium.hpp"

#include <cstdio>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "crypto/secret.hpp"

namespace gerbang::crypto {
namespace {

class SodiumTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(init_sodium()); }
};

std::vector<std::uint8_t> unhex(std::string_view h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> unhex_array(std::string_view h) {
  std::array<std::uint8_t, N> out{};
  const auto v = unhex(h);
  EXPECT_EQ(v.size(), N);
  std::copy_n(v.begin(), std::min(N, v.size()), out.begin());
  return out;
}

Ed25519Seed seed_from_hex(std::string_view h) {
  Ed25519Seed seed;
  const auto v = unhex(h);
  EXPECT_EQ(v.size(), seed.size());
  std::copy_n(v.begin(), std::min(v.size(), seed.size()), seed.data());
  return seed;
}

// ---- SecretBytes ----

template <typename T>
concept Streamable = requires(std::ostream& os, const T& t) { os << t; };

static_assert(!std::is_copy_constructible_v<SecretBytes<32>>);
static_assert(!std::is_copy_assignable_v<SecretBytes<32>>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes<32>>);
static_assert(std::is_nothrow_move_assignable_v<SecretBytes<32>>);
static_assert(!Streamable<SecretBytes<32>>, "secrets must not have operator<<");

TEST_F(SodiumTest, SecretBytesStartZeroed) {
  SecretBytes<48> s;
  ASSERT_TRUE(s.valid());
  EXPECT_EQ(s.size(), 48U);
  for (std::uint8_t b : s.bytes()) {
    EXPECT_EQ(b, 0);
  }
}

TEST_F(SodiumTest, SecretBytesMoveTransfersOwnership) {
  SecretBytes<32> a;
  a.data()[0] = 0xAB;
  const std::uint8_t* p = a.data();
  SecretBytes<32> b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the documented moved-from state
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[0], 0xAB);
  SecretBytes<32> c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
}

TEST_F(SodiumTest, SecretBytesFormatAsRedacted) {
  SecretBytes<32> s;
  random_bytes(s.bytes());
  EXPECT_EQ(fmt::format("{}", s), "<redacted>");
  EXPECT_EQ(fmt::format("key={} end", s), "key=<redacted> end");
}

// ---- Ed25519 ----

struct Rfc8032Vector {
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 §7.1: TEST 1, TEST 2, TEST 3, TEST SHA(abc).
const Rfc8032Vector rfc8032_vectors[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

TEST_F(SodiumTest, Ed25519Rfc8032KnownAnswers) {
  for (const auto& v : rfc8032_vectors) {
    SCOPED_TRACE(v.public_key);
    const Ed25519KeyPair kp = ed25519_from_seed(seed_from_hex(v.seed));
    EXPECT_EQ(hex_encode(kp.public_key), v.public_key);
    // libsodium's secret key is seed || public key.
    EXPECT_EQ(hex_encode(kp.secret_key.bytes()), std::string(v.seed) + v.public_key);
    const auto msg = unhex(v.message);
    const Ed25519Signature sig = sign_detached(msg, kp.secret_key);
    EXPECT_EQ(hex_encode(sig), v.signature);
    EXPECT_TRUE(verify_detached(unhex_array<64>(v.signature), msg, unhex_array<32>(v.public_key)));
  }
}

TEST_F(SodiumTest, Ed25519RejectsAnyFlippedBit) {
  const auto& v = rfc8032_vectors[2];
  const auto pk = unhex_array<32>(v.public_key);
  const auto sig = unhex_array<64>(v.signature);
  const auto msg = unhex(v.message);
  for (std::size_t bit = 0; bit < sig.size() * 8; ++bit) {
    auto bad = sig;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(verify_detached(bad, msg, pk)) << "signature bit " << bit;
  }
  for (std::size_t bit = 0; bit < msg.size() * 8; ++bit) {
    auto bad = msg;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(verify_detached(sig, bad, pk)) << "message bit " << bit;
  }
  for (std::size_t bit = 0; bit < pk.size() * 8; ++bit) {
    auto bad = pk;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(verify_detached(sig, msg, bad)) << "public key bit " << bit;
  }
  auto longer = msg;
  longer.push_back(0);
  EXPECT_FALSE(verify_detached(sig, longer, pk));
}

TEST_F(SodiumTest, Ed25519GeneratedKeysSignAndVerify) {
  const Ed25519KeyPair a = ed25519_generate();
  const Ed25519KeyPair b = ed25519_generate();
  EXPECT_NE(a.public_key, b.public_key);
  const std::string msg = "gerbang checkpoint\n";
  const Ed25519Signature sig = sign_detached(as_bytes(msg), a.secret_key);
  EXPECT_TRUE(verify_detached(sig, as_bytes(msg), a.public_key));
  EXPECT_FALSE(verify_detached(sig, as_bytes(msg), b.public_key));
  EXPECT_FALSE(verify_detached(sig, as_bytes("gerbang checkpoint"), a.public_key));
  // The empty message works through an empty span.
  const Ed25519Signature empty_sig = sign_detached({}, a.secret_key);
  EXPECT_TRUE(verify_detached(empty_sig, {}, a.public_key));
}

// ---- equal_ct, random_bytes ----

TEST_F(SodiumTest, EqualCt) {
  const std::vector<std::uint8_t> a = {1, 2, 3, 4};
  std::vector<std::uint8_t> b = a;
  EXPECT_TRUE(equal_ct(a, b));
  b[3] = 5;
  EXPECT_FALSE(equal_ct(a, b));
  b[3] = 4;
  b[0] = 0;
  EXPECT_FALSE(equal_ct(a, b));
  EXPECT_FALSE(equal_ct(a, std::span<const std::uint8_t>(a).first(3)));
  EXPECT_TRUE(equal_ct({}, {}));
  SecretBytes<16> s1;
  SecretBytes<16> s2;
  EXPECT_TRUE(equal_ct(s1.bytes(), s2.bytes()));
  s2.data()[15] = 1;
  EXPECT_FALSE(equal_ct(s1.bytes(), s2.bytes()));
}

TEST_F(SodiumTest, RandomBytesFillsAndDiffers) {
  std::array<std::uint8_t, 32> a{};
  std::array<std::uint8_t, 32> b{};
  random_bytes(a);
  random_bytes(b);
  EXPECT_NE(a, b);
  EXPECT_NE(a, (std::array<std::uint8_t, 32>{}));
  random_bytes({});  // no-op
}

// ---- base64 and hex ----

TEST_F(SodiumTest, Base64Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(as_bytes(plain)), encoded);
    const auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    EXPECT_EQ(std::string(decoded->begin(), decoded->end()), plain);
  }
  // Both alphabet-only characters of the standard variant.
  const std::vector<std::uint8_t> high = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(base64_encode(high), "+/+/");
  EXPECT_EQ(base64_decode("+/+/"), high);
}

TEST_F(SodiumTest, Base64PublicAndSecretEncodersAgree) {
  // base64_encode (OpenSSL, for public bytes) and base64_encode_secret (libsodium, constant time) are one
  // encoding: every length 0-100 (each padding case, no line breaks) and every byte value.
  std::vector<std::uint8_t> bytes(100);
  random_bytes(bytes);
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    const std::span<const std::uint8_t> s(bytes.data(), n);
    const std::string encoded = base64_encode(s);
    EXPECT_EQ(encoded, base64_encode_secret(s)) << n;
    EXPECT_EQ(encoded.size(), (n + 2) / 3 * 4) << n;
    EXPECT_EQ(base64_decode(encoded), std::vector<std::uint8_t>(s.begin(), s.end())) << n;
  }
  std::vector<std::uint8_t> all(256);
  for (unsigned i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(base64_encode(all), base64_encode_secret(all));
  EXPECT_EQ(base64_encode_secret(as_bytes("foobar")), "Zm9vYmFy");
}

TEST_F(SodiumTest, Base64DecodeIsStrict) {
  const char* bad[] = {
      "Zg",         // missing padding
      "Zg=",        // short padding
      "Zg===",      // extra padding
      "Zm9v====",   // a whole group of padding
      "Zh==",       // non-zero trailing bits (not the canonical encoding of "f")
      "Zm9=",       // non-zero trailing bits
      "Zm9v\n",     // trailing newline
      " Zm9v",      // leading space
      "Zm 9v",      // inner space
      "Zm-_",       // URL-safe alphabet
      "Zg==Zg==",   // padding in the middle
      "=Zm9",       // padding first
      "Zm9vY",      // not a multiple of four
      "====",
  };
  for (const char* b : bad) {
    EXPECT_FALSE(base64_decode(b).has_value()) << '"' << b << '"';
  }
  EXPECT_FALSE(base64_decode(std::string_view("Zm9v\0", 5)).has_value());
  EXPECT_FALSE(base64_decode(std::string_view("Zm9v\0\0\0\0", 8)).has_value());
  // libsodium 1.0.18 maps bytes >= 0x80 to the sextet 63; they must not be a second spelling of "//8=".
  EXPECT_FALSE(base64_decode("AA\x93\x93").has_value());
  EXPECT_FALSE(base64_decode("\xff\xff\xff\xff").has_value());
  EXPECT_FALSE(base64_decode("Zm9v\x80AAA").has_value());
}

TEST_F(SodiumTest, Base64DecodeExact) {
  EXPECT_TRUE(base64_decode_exact<3>("Zm9v").has_value());
  EXPECT_FALSE(base64_decode_exact<4>("Zm9v").has_value());
  EXPECT_FALSE(base64_decode_exact<2>("Zm9v").has_value());
  EXPECT_FALSE(base64_decode_exact<0>("Zm9v").has_value());
  EXPECT_TRUE(base64_decode_exact<0>("").has_value());
}

TEST_F(SodiumTest, HexEncode) {
  EXPECT_EQ(hex_encode({}), "");
  const std::vector<std::uint8_t> v = {0x00, 0x01, 0xab, 0xff, 0x7e};
  EXPECT_EQ(hex_encode(v), "0001abff7e");
  std::vector<std::uint8_t> all(256);
  for (unsigned i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string hex = hex_encode(all);
  ASSERT_EQ(hex.size(), 512U);
  for (unsigned i = 0; i < 256; ++i) {
    char expected[3];
    std::snprintf(expected, sizeof expected, "%02x", i);
    EXPECT_EQ(hex.substr(2 * i, 2), expected) << i;
  }
}

}  // namespace
}  // namespace gerbang::crypto
