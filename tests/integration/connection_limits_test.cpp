// Connection budgets of a listener: max_connections_per_ip keeps one client address from taking the whole
// max_connections budget (and memory) of a listener, the way NGINX's limit_conn per $binary_remote_addr does.
#include <gmock/gmock.h>

#include <memory>
#include <vector>

#include "gateway_fixture.hpp"
#include "harness/raw_client.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class ConnectionLimitsTest : public GatewayTest {
 protected:
  std::vector<std::unique_ptr<RawClient>> open_idle(int n) {
    std::vector<std::unique_ptr<RawClient>> out;
    for (int i = 0; i < n; ++i) {
      auto c = std::make_unique<RawClient>(port());
      EXPECT_TRUE(c->connect());
      out.push_back(std::move(c));
    }
    return out;
  }

  // The gateway closes a refused connection at once; an accepted one stays open (handshake deadline 10s).
  static bool refused(RawClient& c) { return static_cast<bool>(c.wait_for_close(2s)); }

  // Waits until /metrics shows `needle`. With two workers, connections that completed the TCP handshake are
  // accepted in no particular order: wait for the gateway to have taken the first ones before the next.
  ::testing::AssertionResult wait_for_metric(const std::string& needle, std::chrono::milliseconds timeout = 5s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::string m;
    do {
      m = gw.admin_get("/metrics").body;
      if (m.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < until);
    return ::testing::AssertionFailure() << "no \"" << needle << "\" in /metrics";
  }
};

TEST_F(ConnectionLimitsTest, OneAddressCannotOpenMoreThanItsShare) {
  start_gateway(GatewayOptions{.listener = "    max_connections_per_ip: 3\n", .workers = 2});
  auto idle = open_idle(3);
  ASSERT_TRUE(wait_for_metric("gerbang_connections_open{listener=\"main\"} 3\n"));
  // A fourth connection from the same address is accepted by the kernel and closed by the gateway.
  RawClient fourth(port());
  ASSERT_TRUE(fourth.connect());
  EXPECT_TRUE(refused(fourth));
  // The three are still being served: none was closed to make room.
  for (auto& c : idle) {
    EXPECT_FALSE(c->closed_by_peer());
  }
  // A slot freed by a closing client is usable again (counts are released, not leaked).
  idle.pop_back();
  std::this_thread::sleep_for(200ms);  // the gateway notices the close on its next read
  bool served = false;
  for (int attempt = 0; attempt < 20 && !served; ++attempt) {
    auto c = client();
    if (c.connect()) {
      served = c.request("GET", "/after").status == 200u;
    }
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served);
  const std::string m = gw.admin_get("/metrics").body;
  EXPECT_THAT(m, HasSubstr("gerbang_connections_rejected_per_ip_total{listener=\"main\"} 1\n")) << m;
}

// The listener's global budget (max_connections, counted across workers): past it a new connection is
// closed at once, established clients keep being served, and a freed slot can be used again.
TEST_F(ConnectionLimitsTest, ListenerCapRefusesNewConnectionsAndKeepsServingEstablishedOnes) {
  start_gateway(GatewayOptions{.listener = "    max_connections: 4\n    max_connections_per_ip: 0\n", .workers = 2});
  std::vector<std::unique_ptr<TlsClient>> established;
  for (int i = 0; i < 4; ++i) {
    established.push_back(std::make_unique<TlsClient>(pki, port()));
    ASSERT_TRUE(established.back()->connect()) << i;
    ASSERT_EQ(established.back()->request("GET", "/in").status, 200u) << i;
  }
  // A burst over the cap, whichever worker accepts it: every one is closed quickly, none is served.
  const auto t0 = std::chrono::steady_clock::now();
  int refused_count = 0;
  for (int i = 0; i < 20; ++i) {
    RawClient over(port());
    ASSERT_TRUE(over.connect());
    if (refused(over)) ++refused_count;
  }
  EXPECT_EQ(refused_count, 20);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  {
    auto c = client();
    EXPECT_FALSE(c.connect()) << "a TLS handshake over the cap must fail";
  }
  // The established clients are still served, on their kept-alive connections.
  for (auto& c : established) {
    EXPECT_EQ(c->request("GET", "/still").status, 200u);
  }
  const std::string m = gw.admin_get("/metrics").body;
  EXPECT_THAT(m, HasSubstr("gerbang_connections_rejected_total{listener=\"main\"} 21\n")) << m;
  // A freed slot is usable again.
  established.pop_back();
  bool served = false;
  for (int attempt = 0; attempt < 20 && !served; ++attempt) {
    auto c = client();
    if (c.connect()) {
      served = c.request("GET", "/after").status == 200u;
    }
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served);
}

TEST_F(ConnectionLimitsTest, ClosedConnectionsReturnTheirSlots) {
  start_gateway(GatewayOptions{.listener = "    max_connections_per_ip: 2\n"});
  // Many more sequential connections than the cap: each ends before the next, so none is refused.
  for (int i = 0; i < 10; ++i) {
    auto c = client();
    ASSERT_TRUE(c.connect()) << i;
    ASSERT_EQ(c.request("GET", "/seq").status, 200u) << i;
    c.close();
    // The connection's slot is released when its coroutine ends; give the gateway a moment.
    std::this_thread::sleep_for(50ms);
  }
  // Two at once are fine.
  auto a = client();
  auto b = client();
  ASSERT_TRUE(a.connect());
  ASSERT_TRUE(b.connect());
  EXPECT_EQ(a.request("GET", "/a").status, 200u);
  EXPECT_EQ(b.request("GET", "/b").status, 200u);
  EXPECT_EQ(upstream.requests().size(), 12u);
}

TEST_F(ConnectionLimitsTest, ZeroTurnsTheCapOff) {
  start_gateway(GatewayOptions{.listener = "    max_connections_per_ip: 0\n"});
  auto idle = open_idle(40);
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/").status, 200u);
  for (auto& r : idle) {
    EXPECT_FALSE(r->closed_by_peer());
  }
}

TEST_F(ConnectionLimitsTest, OutOfRangeValueIsAConfigError) {
  const auto r =
      gw.check_config_text(make_config(pki, upstream.port(), GatewayOptions{.listener = "    max_connections_per_ip: -1\n"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("max_connections_per_ip"));
}

}  // namespace
}  // namespace gerbang::testing
