// End-to-end proxying through the real gateway binary: keep-alive, bodies both ways, 100-continue, header
// hygiene, routing and local replies.
#include <gmock/gmock.h>

#include <algorithm>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class ProxyTest : public GatewayTest {};

TEST_F(ProxyTest, ForwardsGetAndKeepsBothConnectionsAlive) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.protocol_version(), "TLSv1.3");
  EXPECT_EQ(c.alpn(), "http/1.1");
  for (int i = 0; i < 5; ++i) {
    auto r = c.request("GET", "/hello?x=" + std::to_string(i));
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
    EXPECT_THAT(r.body, HasSubstr("\"target\":\"/hello?x=" + std::to_string(i) + "\""));
    EXPECT_TRUE(r.keep_alive);
  }
  ASSERT_TRUE(upstream.wait_for_requests(5, 5s));
  EXPECT_EQ(upstream.connection_count(), 1u) << "the upstream connection is pooled and reused";
  EXPECT_FALSE(c.closed_by_peer());
}

TEST_F(ProxyTest, ContentLengthBodyArrivesIntactWithGatewayFraming) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  const std::string body(100000, 'q');
  auto r = c.request("POST", "/upload", {{"Content-Type", "application/octet-stream"}}, body);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto req = upstream.requests().at(0);
  EXPECT_EQ(req.body, body);
  EXPECT_EQ(req.header("Content-Length"), "100000");
  EXPECT_FALSE(req.has_header("Transfer-Encoding"));
}

// The part of a Content-Length body that came with the head goes upstream in the head's write; what follows
// streams after it. The upstream sees one well-framed request with every byte in order, on both a body that
// came whole with the head and one whose rest arrived later, on the same keep-alive connection.
TEST_F(ProxyTest, BodyThatCameWithTheHeadIsSentWithItAndTheRestFollows) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /whole HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world"));
  auto r1 = c.read_response();
  ASSERT_TRUE(r1.complete) << r1.error;
  EXPECT_EQ(r1.status, 200u);
  ASSERT_TRUE(c.send_raw("POST /split HTTP/1.1\r\nHost: localhost\r\nContent-Length: 26\r\n\r\nabcdefghij"));
  std::this_thread::sleep_for(150ms);  // the head and the first ten bytes are read (and sent upstream) alone
  ASSERT_TRUE(c.send_raw("klmnopqrstuvwxyz"));
  auto r2 = c.read_response();
  ASSERT_TRUE(r2.complete) << r2.error;
  EXPECT_EQ(r2.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  const auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/whole");
  EXPECT_EQ(reqs[0].body, "hello world");
  EXPECT_EQ(reqs[0].header("Content-Length"), "11");
  EXPECT_EQ(reqs[1].target, "/split");
  EXPECT_EQ(reqs[1].body, "abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(reqs[1].header("Content-Length"), "26");
  // Nothing but the two requests reached the upstream: no stray or repeated bytes between them.
  const std::string raw = upstream.raw_bytes();
  EXPECT_EQ(raw.find("hello world"), raw.rfind("hello world"));
  EXPECT_NE(raw.find("hello worldPOST /split HTTP/1.1\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.substr(raw.size() - 26), "abcdefghijklmnopqrstuvwxyz");
}

// Bodies are relayed as views of the read buffers, not copies: every byte must still arrive exactly, in order,
// across many reads, records and pieces, in both directions and with both framings. Pseudo-random bytes, so a
// piece written from a buffer that a later read had already overwritten cannot go unnoticed.
std::string varied_bytes(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  for (auto& ch : s) {
    seed = seed * 1664525u + 1013904223u;
    ch = static_cast<char>(seed >> 24);
  }
  return s;
}

// `body` as chunks of growing sizes (1, then len * growth + 3, ...), each "size CRLF data CRLF"; no last chunk.
std::vector<std::string> growing_chunks(std::string_view body, std::size_t growth) {
  std::vector<std::string> chunks;
  for (std::size_t at = 0, len = 1; at < body.size(); len = len * growth + 3) {
    const std::size_t n = std::min(len, body.size() - at);
    chunks.push_back(fmt::format("{:x}\r\n", n) + std::string(body.substr(at, n)) + "\r\n");
    at += n;
  }
  return chunks;
}

TEST_F(ProxyTest, VariedBodiesArriveByteExactInBothDirections) {
  const std::string down = varied_bytes(300007, 7);
  upstream.set_handler([&down](UpstreamConnection& conn) {
    while (auto req = conn.read_request()) {
      if (req->target == "/down-length") {
        conn.write_raw("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(down.size()) + "\r\n\r\n");
        for (std::size_t at = 0; at < down.size(); at += 70001) conn.write_raw(down.substr(at, 70001));
      } else if (req->target == "/down-chunked") {
        conn.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (const auto& chunk : growing_chunks(down, 3)) conn.write_raw(chunk);
        conn.write_raw("0\r\n\r\n");
      } else {
        conn.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }
    }
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  for (const char* path : {"/down-length", "/down-chunked"}) {
    auto r = c.request("GET", path);
    ASSERT_TRUE(r.complete) << path << ": " << r.error;
    EXPECT_EQ(r.status, 200u);
    const auto diff = std::mismatch(r.body.begin(), r.body.end(), down.begin(), down.end()).first;
    EXPECT_TRUE(r.body == down) << path << ": " << r.body.size() << " bytes, first difference at "
                                << std::distance(r.body.begin(), diff);
  }
  // Uploads: one Content-Length body sent in uneven pieces, one chunked body of growing chunks.
  const std::string up = varied_bytes(1000003, 11);
  ASSERT_TRUE(c.send_raw("POST /up-length HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(up.size()) +
                         "\r\n\r\n" + up.substr(0, 5000)));
  for (std::size_t at = 5000; at < up.size(); at += 99991) ASSERT_TRUE(c.send_raw(up.substr(at, 99991)));
  auto r1 = c.read_response();
  ASSERT_TRUE(r1.complete) << r1.error;
  EXPECT_EQ(r1.status, 200u);
  std::string chunked = "POST /up-chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const auto& chunk : growing_chunks(up, 2)) chunked += chunk;
  ASSERT_TRUE(c.send_raw(chunked + "0\r\n\r\n"));
  auto r2 = c.read_response();
  ASSERT_TRUE(r2.complete) << r2.error;
  EXPECT_EQ(r2.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(4, 10s));
  const auto reqs = upstream.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_TRUE(reqs[2].body == up) << "Content-Length upload: " << reqs[2].body.size() << " bytes";
  EXPECT_TRUE(reqs[3].body == up) << "chunked upload: " << reqs[3].body.size() << " bytes";
  EXPECT_TRUE(reqs[3].chunked);
}

TEST_F(ProxyTest, ChunkedRequestIsForwardedChunkedAndDecodedCorrectly) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto req = upstream.requests().at(0);
  EXPECT_TRUE(req.chunked);
  EXPECT_EQ(req.body, "hello world");
  EXPECT_EQ(req.header_count("Transfer-Encoding"), 1u);
  EXPECT_FALSE(req.has_header("X-Trailer")) << "trailers are not forwarded";
  EXPECT_THAT(upstream.raw_bytes(), Not(HasSubstr("ext=1")));
}

TEST_F(ProxyTest, ChunkedResponseIsRelayedChunked) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                   "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    conn.sleep(2s);
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/chunks");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body, "abcdefg");
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(r.keep_alive);
}

TEST_F(ProxyTest, CloseDelimitedResponseIsReframedAsChunked) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end");
    conn.close();
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/eof");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body, "until the end");
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  auto again = c.request("GET", "/eof");
  EXPECT_TRUE(again.complete) << "the client connection survives the upstream's close";
}

TEST_F(ProxyTest, ExpectContinueIsAnsweredByTheGateway) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("PUT /doc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  const std::string interim = c.read_until("\r\n\r\n", 5s);
  EXPECT_THAT(interim, HasSubstr("HTTP/1.1 100 Continue"));
  ASSERT_TRUE(c.send_raw("12345"));
  auto r = c.read_response();
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto req = upstream.requests().at(0);
  EXPECT_EQ(req.body, "12345");
  EXPECT_FALSE(req.has_header("Expect"));
}

TEST_F(ProxyTest, ExpectContinueWithTooLargeBodyGets413WithoutSendingIt) {
  start_gateway(GatewayOptions{.route = "    max_body: 1KiB\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("PUT /doc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(upstream.requests().size(), 0u);
}

TEST_F(ProxyTest, HeaderHygieneTowardsTheUpstream) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/h",
                     {{"Connection", "keep-alive, X-Drop-Me"},
                      {"X-Drop-Me", "secret"},
                      {"Keep-Alive", "timeout=5"},
                      {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                      {"Upgrade", "websocket"},
                      {"HTTP2-Settings", "AAMAAABkAAQAAP__"},
                      {"TE", "trailers"},
                      {"X-Gerbang-Consumer", "admin"},
                      {"x-gerbang-groups", "root"},
                      {"X-Forwarded-For", "6.6.6.6"},
                      {"Forwarded", "for=6.6.6.6"},
                      {"X-Real-IP", "6.6.6.6"},
                      {"True-Client-IP", "6.6.6.6"},
                      {"X-Request-Id", "attacker-chosen"},
                      {"X-Custom", "kept"}});
  ASSERT_EQ(r.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto req = upstream.requests().at(0);
  for (const char* gone : {"X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "Upgrade", "HTTP2-Settings", "TE",
                           "X-Gerbang-Consumer", "x-gerbang-groups", "True-Client-IP"}) {
    EXPECT_FALSE(req.has_header(gone)) << gone;
  }
  EXPECT_EQ(req.header("X-Custom"), "kept");
  EXPECT_EQ(req.header("X-Forwarded-For"), "127.0.0.1");
  EXPECT_EQ(req.header("X-Real-IP"), "127.0.0.1");
  EXPECT_EQ(req.header("X-Forwarded-Proto"), "https");
  EXPECT_EQ(req.header("Forwarded"), "for=127.0.0.1;proto=https;host=\"localhost\"");
  EXPECT_NE(req.header("X-Request-Id"), "attacker-chosen");
  EXPECT_EQ(req.header("X-Request-Id"), r.header("X-Request-Id")) << "the client gets the id the upstream saw";
  EXPECT_EQ(req.header("X-Request-Id").size(), 32u);
}

TEST_F(ProxyTest, TrustedProxyChainsAreExtended) {
  start_gateway(GatewayOptions{.top = "trusted_proxies: [\"127.0.0.0/8\"]\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/t", {{"X-Forwarded-For", "203.0.113.9"}, {"X-Request-Id", "lb-1234"}});
  ASSERT_EQ(r.status, 200u);
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto req = upstream.requests().at(0);
  EXPECT_EQ(req.header("X-Forwarded-For"), "203.0.113.9, 127.0.0.1");
  EXPECT_EQ(req.header("X-Request-Id"), "lb-1234");
  EXPECT_EQ(r.header("X-Request-Id"), "lb-1234");
}

TEST_F(ProxyTest, ResponseHygieneTowardsTheClient) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (conn.read_request()) {
      conn.write_raw("HTTP/1.1 200 OK\r\nServer: Apache/2.4.1 (Unix)\r\nX-Powered-By: PHP/5.1\r\n"
                     "Connection: X-Internal\r\nX-Internal: yes\r\nX-Gerbang-Receipt: forged\r\n"
                     "Content-Length: 2\r\n\r\nok");
    }
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/r");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_FALSE(r.has_header("Server"));
  EXPECT_FALSE(r.has_header("X-Powered-By"));
  EXPECT_FALSE(r.has_header("X-Internal"));
  EXPECT_FALSE(r.has_header("X-Gerbang-Receipt"));
  EXPECT_EQ(r.header("Strict-Transport-Security"), "max-age=31536000");
  EXPECT_EQ(r.header_count("X-Request-Id"), 1u);
}

TEST_F(ProxyTest, RoutesByLongestPrefixAndStripsPrefix) {
  GatewayOptions o;
  o.extra_routes =
      "  - name: api\n"
      "    match:\n"
      "      path_prefix: /api\n"
      "      methods: [GET]\n"
      "    upstream: backend\n"
      "    strip_prefix: true\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_EQ(c.request("GET", "/api/v1/items?q=1").status, 200u);
  ASSERT_EQ(c.request("GET", "/apixyz").status, 200u);  // not under /api: the "/" route
  auto post = c.request("POST", "/api/v1/items", {}, "x");
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.header("Allow"), "GET");
  EXPECT_EQ(post.header("Content-Type"), "application/problem+json");
  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  auto reqs = upstream.requests();
  EXPECT_EQ(reqs[0].target, "/v1/items?q=1");
  EXPECT_EQ(reqs[1].target, "/apixyz");
}

TEST_F(ProxyTest, UnknownRouteGetsProblemJson404) {
  start_gateway(GatewayOptions{.route_match = "      hosts: [\"api.kota.go.id\"]\n      path_prefix: /\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/x");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.header("Content-Type"), "application/problem+json");
  EXPECT_THAT(r.body, HasSubstr("\"type\":\"urn:gerbang:problem:route.not_found\""));
  EXPECT_THAT(r.body, HasSubstr("\"request_id\":\"" + r.header("X-Request-Id") + "\""));
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(c.request("GET", "/y", {{"Host", "api.kota.go.id"}}).status, 200u);
}

TEST_F(ProxyTest, DotSegmentsAreRejected) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/public/../admin").status, 400u);
  auto c2 = client();
  ASSERT_TRUE(c2.connect());
  EXPECT_EQ(c2.request("GET", "/public/%2e%2e/admin").status, 400u);
  EXPECT_EQ(upstream.requests().size(), 0u);
}

TEST_F(ProxyTest, HeadResponsesKeepContentLengthWithoutBody) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (auto req = conn.read_request()) {
      conn.write_raw(req->method == "HEAD" ? "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                                           : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("HEAD /x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  ReadOptions ro;
  ro.head_response = true;
  auto r = c.read_response(ro);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.header("Content-Length"), "1234");
  auto next = c.request("GET", "/after-head");
  EXPECT_TRUE(next.complete) << "the connection is still in sync after HEAD";
}

TEST_F(ProxyTest, AccessLogHasOneJsonLinePerExchange) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/logged?secret=1", {{"Authorization", "Bearer topsecret"}});
  ASSERT_EQ(r.status, 200u);
  ASSERT_TRUE(gw.wait_for_output("\"request_id\":\"" + r.header("X-Request-Id") + "\"", 5s));
  const std::string log = gw.stdout_text();
  EXPECT_THAT(log, HasSubstr("\"path\":\"/logged\""));
  EXPECT_THAT(log, HasSubstr("\"status\":200"));
  EXPECT_THAT(log, Not(HasSubstr("secret=1")));
  EXPECT_THAT(log, Not(HasSubstr("topsecret")));
}

TEST_F(ProxyTest, MetricsCountRequestsByRouteAndStatus) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c.request("GET", "/m").status, 200u);
  }
  // The exchange is counted just after its last byte is written: poll briefly rather than race it.
  const std::string want = "gerbang_requests_total{route=\"echo\",status=\"200\"} 3";
  HttpResponse m;
  for (int i = 0; i < 100; ++i) {
    m = gw.admin_get("/metrics");
    if (m.body.find(want) != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(m.status, 200u);
  EXPECT_THAT(m.body, HasSubstr(want));
  EXPECT_THAT(m.body, HasSubstr("gerbang_tls_handshakes_total{listener=\"main\"} 1"));
  EXPECT_THAT(m.body, HasSubstr("gerbang_connections_open{listener=\"main\"} 1"));
  EXPECT_EQ(gw.admin_get("/healthz").status, 200u);
  EXPECT_EQ(gw.admin_get("/readyz").status, 200u);
}

}  // namespace
}  // namespace gerbang::testing
