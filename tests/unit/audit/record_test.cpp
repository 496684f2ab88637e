// Canonical record encoding (docs/audit-format.md §2), CRC-32C vectors, receipts and ISO 8601 parsing.
#include "audit/record.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "audit/crc32c.hpp"
#include "audit/json.hpp"
#include "audit/log.hpp"
#include "audit/reader.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit {
namespace {

TEST(RecordEncoding, MinimalRecordKnownAnswer) {
  Record r;
  r.kind = RecordKind::start;
  r.time_ms = 1767225600123;
  EXPECT_EQ(encode(r), R"({"v":1,"kind":"start","time_ms":1767225600123})");
  auto d = decode(encode(r));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, r);
}

TEST(RecordEncoding, FullRecordKnownAnswerAndRoundTrip) {
  Record r;
  r.kind = RecordKind::exchange_close;
  r.time_ms = 1767225600123;
  r.request_id = "r1";
  r.listener = "public";
  r.client = "203.0.113.7:51234";
  r.tls_version = "TLSv1.3";
  r.tls_cipher = "TLS_AES_128_GCM_SHA256";
  r.client_cert_sha256 = "ab";
  r.consumer = "dukcapil";
  r.auth_method = "mtls";
  r.route = "citizens";
  r.upstream = "10.0.0.5:8080";
  r.method = "POST";
  r.path = "/a?b=\"c\"\\d";
  r.decision = "forward";
  r.reason = "waf.block";
  r.waf_rule_ids = "942100,949110";
  r.request_body_sha256 = "cd";
  r.response_body_sha256 = "ef";
  r.detail = "line1\nline2\t\x01 caf\xC3\xA9 /";
  r.status = 201;
  r.bytes_in = 10;
  r.bytes_out = 20;
  r.duration_us = 30;
  r.opens = 0;
  const std::string expected =
      R"({"v":1,"kind":"exchange_close","time_ms":1767225600123,"request_id":"r1","listener":"public",)"
      R"("client":"203.0.113.7:51234","tls_version":"TLSv1.3","tls_cipher":"TLS_AES_128_GCM_SHA256",)"
      R"("client_cert_sha256":"ab","consumer":"dukcapil","auth_method":"mtls","route":"citizens",)"
      R"("upstream":"10.0.0.5:8080","method":"POST","path":"/a?b=\"c\"\\d","status":201,"decision":"forward",)"
      R"("reason":"waf.block","waf_rule_ids":"942100,949110","bytes_in":10,"bytes_out":20,"duration_us":30,)"
      R"("request_body_sha256":"cd","response_body_sha256":"ef","opens":0,)"
      "\"detail\":\"line1\\nline2\\t\\u0001 caf\xC3\xA9 /\"}";
  EXPECT_EQ(encode(r), expected);
  auto d = decode(expected);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, r);
  EXPECT_EQ(encode(*d), expected);
}

TEST(RecordEncoding, EveryKindRoundTrips) {
  for (int k = 0; k <= static_cast<int>(RecordKind::start); ++k) {
    Record r;
    r.kind = static_cast<RecordKind>(k);
    r.time_ms = -5;  // before 1970: still canonical
    r.detail = "x";
    auto d = decode(encode(r));
    ASSERT_TRUE(d.has_value()) << encode(r);
    EXPECT_EQ(*d, r);
  }
}

TEST(RecordEncoding, InvalidUtf8BecomesReplacementCharacter) {
  Record r;
  r.path = std::string("/a\xFF\xC3", 4);
  const std::string e = encode(r);
  EXPECT_NE(e.find("\"/a\xEF\xBF\xBD\xEF\xBF\xBD\""), std::string::npos) << e;
  auto d = decode(e);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(encode(*d), e);
}

// The escaping rules of §2.2 applied one byte at a time, as the format describes them: the reference that
// json::append_string_content (which finds runs of plain bytes eight at a time) must match byte for byte.
std::string escape_reference(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = c >= 0xC0 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF8 ? 4 : 0;
      if (n != 0 && i + n <= s.size() && json::is_valid_utf8(s.substr(i, n))) {
        out.append(s.substr(i, n));
        i += n;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
      continue;
    }
    ++i;
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += std::string("\\u00") + hex[c >> 4U] + hex[c & 0xFU];
    else out += static_cast<char>(c);
  }
  return out;
}

TEST(RecordEncoding, StringEscapingMatchesTheByteWiseRulesAtEveryOffset) {
  // Every byte value, alone and at each offset of a 24-byte plain run (the fast path reads eight bytes at a time).
  for (unsigned b = 0; b < 256; ++b) {
    for (std::size_t at = 0; at < 24; ++at) {
      std::string s(24, 'a');
      s[at] = static_cast<char>(b);
      std::string got;
      json::append_string_content(got, s);
      ASSERT_EQ(got, escape_reference(s)) << "byte " << b << " at " << at;
    }
  }
  // Random strings, biased towards the bytes that need care and towards UTF-8 sequences, valid or not.
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  const auto next = [&x] {
    x ^= x << 13U;
    x ^= x >> 7U;
    x ^= x << 17U;
    return x;
  };
  static constexpr unsigned char special[] = {'"', '\\', 0x00, 0x1F, 0x20, 0x7F, 0x80, 0xBF, 0xC2,
                                              0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0xED, 0xA0, 0xFF, '\n'};
  for (int round = 0; round < 20000; ++round) {
    std::string s(next() % 70, '\0');
    for (char& c : s) {
      const std::uint64_t r = next();
      c = static_cast<char>(r % 4 == 0 ? special[(r >> 8U) % sizeof special] : 0x20 + (r >> 8U) % 0x5F);
    }
    std::string got = "prefix";
    json::append_string_content(got, s);
    ASSERT_EQ(got, "prefix" + escape_reference(s)) << "round " << round;
  }
}

TEST(RecordEncoding, NonCanonicalInputsAreRejected) {
  const std::vector<std::string> bad = {
      "",
      "{}",
      R"({"v":1,"kind":"start","time_ms":1} )",                     // trailing whitespace
      R"( {"v":1,"kind":"start","time_ms":1})",                     // leading whitespace
      R"({"v":1, "kind":"start","time_ms":1})",                     // inner whitespace
      R"({"v":2,"kind":"start","time_ms":1})",                      // unknown version
      R"({"kind":"start","v":1,"time_ms":1})",                      // order
      R"({"v":1,"kind":"begin","time_ms":1})",                      // unknown kind
      R"({"v":1,"kind":"start","time_ms":01})",                     // leading zero
      R"({"v":1,"kind":"start","time_ms":-0})",                     // negative zero
      R"({"v":1,"kind":"start","time_ms":1.5})",                    // float
      R"({"v":1,"kind":"start","time_ms":1,"status":0})",           // zero value present
      R"({"v":1,"kind":"start","time_ms":1,"route":""})",           // empty string present
      R"({"v":1,"kind":"start","time_ms":1,"route":"a","client":"b"})",  // out of order
      R"({"v":1,"kind":"start","time_ms":1,"route":"a","route":"a"})",   // duplicate
      R"({"v":1,"kind":"start","time_ms":1,"colour":"a"})",              // unknown key
      R"({"v":1,"kind":"start","time_ms":1,"route":"\/"})",              // needless escape
      R"({"v":1,"kind":"start","time_ms":1,"route":"\u0041"})",          // needless \u escape
      R"({"v":1,"kind":"start","time_ms":1,"route":"\u001F"})",          // uppercase hex
      R"({"v":1,"kind":"start","time_ms":1,"route":"\u000a"})",          // \n has a short form
      R"({"v":1,"kind":"start","time_ms":1,"status":4294967296})",       // status out of range
      R"({"v":1,"kind":"start","time_ms":1,"bytes_in":-1})",             // negative count
      R"({"v":1,"kind":"start","time_ms":1,"bytes_in":18446744073709551616})",  // overflow
      R"({"v":1,"kind":"start","time_ms":1}x)",                                 // trailing bytes
      std::string("{\"v\":1,\"kind\":\"start\",\"time_ms\":1,\"route\":\"\xFF\"}"),     // invalid UTF-8
      std::string("{\"v\":1,\"kind\":\"start\",\"time_ms\":1,\"route\":\"a\x01\"}"),    // raw control
  };
  for (const auto& b : bad) EXPECT_FALSE(decode(b).has_value()) << b;
}

TEST(RecordEncoding, LargeNumbersRoundTrip) {
  Record r;
  r.time_ms = INT64_MIN;
  r.bytes_in = UINT64_MAX;
  r.status = 4294967295U;
  r.opens = UINT64_MAX;
  auto d = decode(encode(r));
  ASSERT_TRUE(d.has_value()) << encode(r);
  EXPECT_EQ(*d, r);
}

TEST(Crc32c, KnownAnswers) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(crypto::as_bytes(digits)), 0xE3069283U);
  // RFC 3720 §B.4 vectors.
  std::array<std::uint8_t, 32> zeros{};
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAU);
  std::array<std::uint8_t, 32> ones{};
  ones.fill(0xFF);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43U);
  std::array<std::uint8_t, 32> inc{};
  for (std::size_t i = 0; i < inc.size(); ++i) inc[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(crc32c(inc), 0x46DD794EU);
  // Incremental equals one-shot.
  EXPECT_EQ(crc32c(std::span(inc).subspan(5), crc32c(std::span(inc).first(5))), 0x46DD794EU);
}

TEST(Receipt, FormatAndParse) {
  crypto::Hash h{};
  h[0] = 1;
  const std::string r = format_receipt("audit.gw/x;y", 42, h);
  auto p = parse_receipt(r);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->origin, "audit.gw/x;y");
  EXPECT_EQ(p->index, 42U);
  EXPECT_EQ(p->leaf_hash, h);
  EXPECT_FALSE(parse_receipt("o;01;" + crypto::base64_encode(h)).has_value());
  EXPECT_FALSE(parse_receipt("o;1;AAAA").has_value());
  EXPECT_FALSE(parse_receipt(";1;" + crypto::base64_encode(h)).has_value());
}

TEST(Iso8601, Parses) {
  EXPECT_EQ(parse_iso8601_ms("1970-01-01"), 0);
  EXPECT_EQ(parse_iso8601_ms("2026-01-01T00:00:00Z"), 1767225600000);
  EXPECT_EQ(parse_iso8601_ms("2026-01-01T07:00:00.250+07:00"), 1767225600250);
  EXPECT_EQ(parse_iso8601_ms("2000-02-29T12:00:00Z"), 951825600000);
  EXPECT_FALSE(parse_iso8601_ms("2026-01-01T00:00:00").has_value());
  EXPECT_FALSE(parse_iso8601_ms("2026-13-01").has_value());
  EXPECT_FALSE(parse_iso8601_ms("yesterday").has_value());
}

}  // namespace
}  // namespace gerbang::audit
