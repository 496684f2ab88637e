// Strict framing through the real gateway: every ambiguous or malformed head is answered 400/414/431/413,
// the connection is closed, and the upstream never sees a byte of it (RecordingUpstream keeps every byte).
#include <gmock/gmock.h>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct FramingCase {
  const char* name;
  std::string raw;
  unsigned status;
  const char* reason;  // the problem type's dotted name
};

std::vector<FramingCase> cases() {
  const std::string host = "Host: localhost\r\n";
  return {
      {"cl_and_te", "POST / HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
       400, "http.content_length_with_te"},
      {"te_and_cl", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
       400, "http.content_length_with_te"},
      {"duplicate_cl_equal", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400,
       "http.duplicate_content_length"},
      {"duplicate_cl_differ", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
       "http.duplicate_content_length"},
      {"cl_list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3, 3\r\n\r\nabc", 400, "http.bad_content_length"},
      {"cl_plus", "POST / HTTP/1.1\r\n" + host + "Content-Length: +3\r\n\r\nabc", 400, "http.bad_content_length"},
      {"cl_hex", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x3\r\n\r\nabc", 400, "http.bad_content_length"},
      {"te_gzip", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\nabc", 400,
       "http.bad_transfer_encoding"},
      {"te_gzip_chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400,
       "http.bad_transfer_encoding"},
      {"te_xchunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400,
       "http.bad_transfer_encoding"},
      {"te_twice", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400, "http.bad_transfer_encoding"},
      {"te_space_before_colon", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
       "http.bad_header"},
      {"obs_fold", "GET / HTTP/1.1\r\n" + host + "X-A: one\r\n two\r\n\r\n", 400, "http.obs_fold"},
      {"bare_lf", "GET / HTTP/1.1\n" + host + "\r\n", 400, "http.bare_cr_or_lf"},
      {"bare_cr", "GET / HTTP/1.1\r\nHost: local\rhost\r\n\r\n", 400, "http.bare_cr_or_lf"},
      {"nul_in_value", std::string("GET / HTTP/1.1\r\n") + host + std::string("X-A: a\0b\r\n\r\n", 12), 400,
       "http.nul_in_head"},
      {"space_in_target", "GET /a b HTTP/1.1\r\n" + host + "\r\n", 400, "http.bad_request_line"},
      {"missing_host", "GET / HTTP/1.1\r\n\r\n", 400, "http.missing_host"},
      {"two_hosts", "GET / HTTP/1.1\r\n" + host + host + "\r\n", 400, "http.missing_host"},
      {"http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http.bad_version"},
      {"bad_chunk_size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400,
       "http.bad_chunk"},
      // Connection is a list of tokens (RFC 9110 §7.6.1); a value that is not cannot say whether the
      // connection persists, and was Beast's to refuse when it parsed the whole head.
      {"connection_not_tokens", "GET / HTTP/1.1\r\n" + host + "Connection: keep alive\r\n\r\n", 400,
       "http.bad_header"},
      {"connection_with_parameter", "GET / HTTP/1.1\r\n" + host + "Connection: close;q=1\r\n\r\n", 400,
       "http.bad_header"},
      {"chunk_size_overflow",
       "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", 400,
       "http.bad_chunk"},
  };
}

class FramingTest : public GatewayTest, public ::testing::WithParamInterface<FramingCase> {};

TEST_P(FramingTest, RejectsClosesAndForwardsNothing) {
  start_gateway();
  const auto& tc = GetParam();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw(tc.raw));
  auto r = c.read_response();
  EXPECT_EQ(r.status, tc.status) << r.body;
  EXPECT_THAT(r.body, HasSubstr(std::string("urn:gerbang:problem:") + tc.reason));
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.wait_for_close(5s));
  // Nothing complete reached the upstream: no parsed request, and for head errors not one byte.
  EXPECT_EQ(upstream.requests().size(), 0u);
  if (std::string(tc.reason) != "http.bad_chunk") {
    EXPECT_EQ(upstream.raw_bytes(), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, FramingTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

class LimitsTest : public GatewayTest {};

TEST_F(LimitsTest, RequestLineAndHeaderLimits) {
  start_gateway(GatewayOptions{.top = "limits:\n  max_request_line: 1KiB\n  max_header_bytes: 4KiB\n  max_headers: 20\n"});
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    ASSERT_TRUE(c.send_raw("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    EXPECT_EQ(c.read_response().status, 414u);
  }
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    std::string many = "GET / HTTP/1.1\r\nHost: localhost\r\n";
    for (int i = 0; i < 25; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    ASSERT_TRUE(c.send_raw(many + "\r\n"));
    EXPECT_EQ(c.read_response().status, 431u);
  }
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    ASSERT_TRUE(c.send_raw("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n"));
    EXPECT_EQ(c.read_response().status, 431u);
  }
  {
    auto c = client();  // exactly at the limits is fine
    ASSERT_TRUE(c.connect());
    HeaderList h;
    for (int i = 0; i < 18; ++i) h.emplace_back("X-H" + std::to_string(i), "v");
    EXPECT_EQ(c.request("GET", "/" + std::string(900, 'a'), h).status, 200u);
  }
  EXPECT_EQ(upstream.requests().size(), 1u);
}

TEST_F(LimitsTest, BodyLimitByContentLengthAndWhileStreamingChunked) {
  start_gateway(GatewayOptions{.route = "    max_body: 10KiB\n"});
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    auto r = c.request("POST", "/big", {}, std::string(20000, 'x'));
    EXPECT_EQ(r.status, 413u);
    EXPECT_THAT(r.body, HasSubstr("limits.body_too_large"));
  }
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    std::string raw = "POST /big HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 6; ++i) raw += "800\r\n" + std::string(2048, 'y') + "\r\n";
    raw += "0\r\n\r\n";
    ASSERT_TRUE(c.send_raw(raw));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 413u);
  }
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    EXPECT_EQ(c.request("POST", "/ok", {}, std::string(10240, 'z')).status, 200u);
  }
  // Only the request within the limit ever reached the upstream complete.
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  EXPECT_EQ(upstream.requests().size(), 1u);
  EXPECT_EQ(upstream.requests()[0].target, "/ok");
}

TEST_F(LimitsTest, SmuggledRequestInsideAChunkStaysBodyData) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  const std::string inner = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", inner.size());
  ASSERT_TRUE(c.send_raw("POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         std::string(size) + "\r\n" + inner + "\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  EXPECT_EQ(upstream.requests().size(), 1u);
  EXPECT_EQ(upstream.requests()[0].body, inner);
}

TEST_F(LimitsTest, PipelinedRequestsAreAnsweredInOrder) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto a = c.read_response();
  auto b = c.read_response();
  EXPECT_THAT(a.body, HasSubstr("/one"));
  EXPECT_THAT(b.body, HasSubstr("/two"));
}

}  // namespace
}  // namespace gerbang::testing
