// Graceful shutdown of the real binary on SIGTERM: idle connections closed, in-flight requests finished with
// `Connection: close`, /readyz 503 while draining, the drain deadline enforced, exit code 0.
#include <gmock/gmock.h>

#include <sys/wait.h>

#include <csignal>
#include <thread>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Reads one request, waits `hold`, answers 200 "done" (or nothing if the upstream is stopping first).
UpstreamHandler slow_handler(std::chrono::milliseconds hold) {
  return [hold](UpstreamConnection& conn) {
    while (auto req = conn.read_request(30s)) {
      conn.sleep(hold);
      if (conn.stopping() || !conn.write_response(200, "done", {{"Content-Type", "text/plain"}})) {
        return;
      }
    }
  };
}

class ShutdownTest : public GatewayTest {
 protected:
  void expect_clean_exit(std::chrono::milliseconds within) {
    int status = -1;
    ASSERT_TRUE(gw.wait_for_exit(within, &status)) << gw.stderr_text();
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\nstderr:\n" << gw.stderr_text();
    EXPECT_EQ(WEXITSTATUS(status), 0) << gw.stderr_text();
  }
};

TEST_F(ShutdownTest, IdleKeepAliveConnectionIsClosedAndTheProcessExits) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/before");
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_TRUE(r.keep_alive);

  const auto t0 = Clock::now();
  gw.signal(SIGTERM);
  EXPECT_TRUE(c.wait_for_close(5s));
  expect_clean_exit(5s);
  EXPECT_LT(Clock::now() - t0, 5s);
}

TEST_F(ShutdownTest, InFlightRequestCompletesWithConnectionClose) {
  upstream.set_handler(slow_handler(1s));
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw(c.format_request("GET", "/slow", {}, {})));
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));

  gw.signal(SIGTERM);
  auto r = c.read_response(5s);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "done");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(c.wait_for_close(5s));
  expect_clean_exit(5s);
}

TEST_F(ShutdownTest, ReadyzAnswers503WhileDraining) {
  upstream.set_handler(slow_handler(2s));
  start_gateway();
  auto ready = gw.admin_get("/readyz");
  ASSERT_TRUE(ready.complete) << ready.error;
  EXPECT_EQ(ready.status, 200u);

  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw(c.format_request("GET", "/held", {}, {})));
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));

  gw.signal(SIGTERM);
  // The signal is handled asynchronously: poll (bounded) until readiness flips.
  HttpResponse draining;
  const auto deadline = Clock::now() + 1500ms;
  do {
    draining = gw.admin_get("/readyz", 1s);
    if (draining.status == 503) {
      break;
    }
    std::this_thread::sleep_for(20ms);
  } while (Clock::now() < deadline);
  EXPECT_EQ(draining.status, 503u) << draining.error << " " << draining.body;
  EXPECT_TRUE(gw.running()) << "still draining the held request";

  auto r = c.read_response(5s);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("Connection"), "close");
  expect_clean_exit(5s);
}

TEST_F(ShutdownTest, DrainDeadlineClosesStuckRequestsAndExits) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (conn.read_request(10s)) {
      conn.sleep(60s);  // never answers; returns early when the upstream stops
    }
  });
  GatewayOptions g;
  g.top = "timeouts:\n  drain: 1s\n";
  start_gateway(g);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw(c.format_request("GET", "/stuck", {}, {})));
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));

  const auto t0 = Clock::now();
  gw.signal(SIGTERM);
  expect_clean_exit(4s);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 900ms) << "the drain deadline is 1s; the stuck request deserved it";
  EXPECT_LT(took, 4s);
  EXPECT_TRUE(c.wait_for_close(1s));
}

}  // namespace
}  // namespace gerbang::testing
