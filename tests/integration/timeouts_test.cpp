// Every wait has a deadline: slowloris heads, trickled bodies, idle keep-alive, silent handshakes, dead and
// silent upstreams. Each test sets short timeouts and asserts both the answer and that it came in time.
#include <thread>
#include <gmock/gmock.h>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class TimeoutsTest : public GatewayTest {};

TEST_F(TimeoutsTest, SlowlorisHeadIsCutAtTheHeadDeadline) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  request_head: 500ms\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  const auto t0 = Clock::now();
  // A byte every 100 ms keeps the connection busy, but the head deadline is total, not per read.
  for (char ch : std::string("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaa")) {
    if (!c.send_raw(std::string(1, ch))) break;
    std::this_thread::sleep_for(100ms);
    if (Clock::now() - t0 > 3s) break;
  }
  // Like NGINX's client_header_timeout: the connection is closed (no reply can be trusted to arrive on a
  // timed-out socket); the exchange is logged and counted as 408.
  EXPECT_TRUE(c.wait_for_close(3s));
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(upstream.connection_count(), 0u);
  EXPECT_TRUE(gw.wait_for_output("\"reason\":\"http.request_timeout\"", 2s));
  EXPECT_THAT(gw.stdout_text(), HasSubstr("\"status\":408"));
}

TEST_F(TimeoutsTest, IdleKeepAliveConnectionIsClosed) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  keepalive_idle: 300ms\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_EQ(c.request("GET", "/").status, 200u);
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.wait_for_close(3s));
  EXPECT_GE(Clock::now() - t0, 250ms);
}

// A connection idle for longer than the worker's sweep interval (1 s) gives up its own deadline timer; the
// worker's idle sweep then closes it at its keep-alive deadline (at most one interval late). Without the
// sweep's check the connection would stay open for ever. It still serves a request before its deadline.
TEST_F(TimeoutsTest, LongIdleKeepAliveConnectionIsClosedByTheIdleSweep) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  keepalive_idle: 2500ms\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_EQ(c.request("GET", "/").status, 200u);
  std::this_thread::sleep_for(1500ms);  // parked past the sweep interval: the sweep holds its deadline now
  ASSERT_EQ(c.request("GET", "/").status, 200u) << "a long-parked connection still wakes up for a request";
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.wait_for_close(6s));
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 2400ms);
  EXPECT_LT(waited, 4000ms) << "closed up to one sweep interval after the deadline";
}

TEST_F(TimeoutsTest, SilentClientIsDroppedAtTheHandshakeDeadline) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  handshake: 300ms\n"});
  RawClient raw(port());
  ASSERT_TRUE(raw.connect());
  const auto t0 = Clock::now();
  EXPECT_TRUE(raw.wait_for_close(3s));
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(raw.read_raw(100ms), "");
}

TEST_F(TimeoutsTest, StalledBodyIsCutAtTheIdleDeadline) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  body_idle: 300ms\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc"));
  const auto t0 = Clock::now();
  EXPECT_TRUE(c.wait_for_close(3s));
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_TRUE(gw.wait_for_output("\"reason\":\"http.body_timeout\"", 2s));
  EXPECT_EQ(upstream.requests().size(), 0u) << "the upstream never got a complete request";
}

TEST_F(TimeoutsTest, TrickledBodyUnderTheMinimumRateIsCut) {
  start_gateway(GatewayOptions{.top = "timeouts:\n  body_idle: 500ms\n  body_min_rate: 1KiB\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"));
  const auto t0 = Clock::now();
  // One byte every 100 ms never trips the idle deadline, only the rate.
  while (Clock::now() - t0 < 5s) {
    if (!c.send_raw("x", 1s)) break;
    std::this_thread::sleep_for(100ms);
    if (c.closed_by_peer()) break;
  }
  EXPECT_TRUE(c.wait_for_close(3s));
  EXPECT_LT(Clock::now() - t0, 4s);
  EXPECT_TRUE(gw.wait_for_output("\"reason\":\"http.body_timeout\"", 2s));
}

TEST_F(TimeoutsTest, DeadUpstreamGives502Quickly) {
  // Port 1 on loopback: connection refused at once.
  start_gateway(GatewayOptions{.upstream = "    retries: 0\n", .targets = "[\"127.0.0.1:1\"]"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  const auto t0 = Clock::now();
  auto r = c.request("GET", "/");
  EXPECT_EQ(r.status, 502u);
  EXPECT_THAT(r.body, HasSubstr("upstream.connect_failed"));
  EXPECT_LT(Clock::now() - t0, 1s);
  auto m = gw.admin_get("/metrics");
  EXPECT_THAT(m.body, HasSubstr("gerbang_upstream_errors_total{upstream=\"backend\",kind=\"connect_failed\"} 1"));
}

TEST_F(TimeoutsTest, SilentUpstreamGives504AtTheResponseDeadline) {
  upstream.set_handler([](UpstreamConnection& conn) {
    conn.read_request();
    conn.sleep(5s);
  });
  start_gateway(GatewayOptions{.upstream = "    response_timeout: 400ms\n    retries: 0\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  const auto t0 = Clock::now();
  auto r = c.request("GET", "/slow");
  EXPECT_EQ(r.status, 504u);
  EXPECT_THAT(r.body, HasSubstr("upstream.timeout"));
  EXPECT_GE(Clock::now() - t0, 350ms);
  EXPECT_LT(Clock::now() - t0, 2s);
}

struct BadResponse {
  const char* name;
  std::string bytes;
};

class MalformedUpstreamTest : public GatewayTest, public ::testing::WithParamInterface<BadResponse> {};

TEST_P(MalformedUpstreamTest, Gives502AndNeverRelaysIt) {
  const std::string bytes = GetParam().bytes;
  upstream.set_handler([bytes](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_raw(bytes);
    conn.sleep(1s);
    conn.close();
  });
  start_gateway(GatewayOptions{.upstream = "    retries: 0\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/bad");
  EXPECT_EQ(r.status, 502u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("upstream.bad_response"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("SECRET")));
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, MalformedUpstreamTest,
    ::testing::Values(
        BadResponse{"garbage_status", "HTPT/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET"},
        BadResponse{"status_not_3_digits", "HTTP/1.1 20 OK\r\nContent-Length: 6\r\n\r\nSECRET"},
        BadResponse{"duplicate_cl", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 6\r\n\r\nSECRET"},
        BadResponse{"conflicting_cl", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Length: 3\r\n\r\nSECRET"},
        BadResponse{"cl_and_te", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nSECRET\r\n0\r\n\r\n"},
        BadResponse{"bad_chunk_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nSECRET\r\n0\r\n\r\n"},
        BadResponse{"obs_fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 6\r\n\r\nSECRET"},
        BadResponse{"upgrade_101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nSECRET"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(TimeoutsTest, UpstreamDyingMidBodyNeverLooksComplete) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(40000, 'a'));
    conn.sleep(200ms);
    conn.reset();
  });
  start_gateway(GatewayOptions{.upstream = "    retries: 0\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/partial");
  EXPECT_EQ(r.status, 200u);
  EXPECT_FALSE(r.complete) << "a truncated body must not be presented as complete";
  EXPECT_LT(r.body.size(), 100000u);
  EXPECT_TRUE(c.wait_for_close(3s));
}

TEST_F(TimeoutsTest, ChunkedUpstreamDyingMidBodyHasNoFinalChunk) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    conn.sleep(200ms);
    conn.write_raw("5\r\nwor");
    conn.close();
  });
  start_gateway(GatewayOptions{.upstream = "    retries: 0\n"});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/partial");
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(c.wait_for_close(3s));
}

TEST_F(TimeoutsTest, UpstreamBodyLongerThanContentLengthDoesNotLeakIntoTheNextResponse) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (auto req = conn.read_request()) {
      conn.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged");
    }
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto a = c.request("GET", "/a");
  EXPECT_EQ(a.body, "ok");
  auto b = c.request("GET", "/b");
  EXPECT_EQ(b.body, "ok") << "bytes past the response are never taken as the next response";
  EXPECT_EQ(upstream.connection_count(), 2u) << "a connection with extra bytes is not reused";
}

}  // namespace
}  // namespace gerbang::testing
