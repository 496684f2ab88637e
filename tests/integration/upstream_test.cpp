// Upstream selection, pooling, passive health, safe retries, and TLS/mTLS to the upstream.
#include <gmock/gmock.h>

#include <thread>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class UpstreamTest : public GatewayTest {};

std::string targets(std::initializer_list<std::uint16_t> ports) {
  std::string s = "[";
  for (auto p : ports) {
    s += (s.size() > 1 ? ", " : "") + std::string("\"127.0.0.1:") + std::to_string(p) + "\"";
  }
  return s + "]";
}

TEST_F(UpstreamTest, RoundRobinAcrossTargets) {
  RecordingUpstream second;
  start_gateway(GatewayOptions{.targets = targets({upstream.port(), second.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(c.request("GET", "/rr").status, 200u);
  }
  EXPECT_EQ(upstream.requests().size(), 3u);
  EXPECT_EQ(second.requests().size(), 3u);
}

TEST_F(UpstreamTest, DeadTargetIsRetriedElsewhereAndEjected) {
  start_gateway(GatewayOptions{.upstream = "    max_failures: 2\n    eject_for: 30s\n    retries: 1\n",
                               .targets = targets({1, upstream.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(c.request("GET", "/").status, 200u) << "request " << i;
  }
  EXPECT_EQ(upstream.requests().size(), 8u);
  auto m = gw.admin_get("/metrics").body;
  EXPECT_THAT(m, HasSubstr("gerbang_upstream_ejections_total{upstream=\"backend\"} 1"));
  // Ejected: the dead target was tried exactly max_failures times, then skipped.
  EXPECT_THAT(m, HasSubstr("gerbang_upstream_errors_total{upstream=\"backend\",kind=\"connect_failed\"} 2"));
}

TEST_F(UpstreamTest, PostIsNotRetriedOnceSent) {
  RecordingUpstream second;
  upstream.set_handler([](UpstreamConnection& conn) {
    conn.read_request();
    conn.reset();  // took the request, died before answering
  });
  start_gateway(GatewayOptions{.upstream = "    retries: 2\n", .targets = targets({upstream.port(), second.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("POST", "/pay", {}, "amount=100");
  EXPECT_EQ(r.status, 502u);
  EXPECT_EQ(second.requests().size(), 0u) << "a non-idempotent request must not be replayed";
}

TEST_F(UpstreamTest, StaleKeepAliveConnectionIsReplacedTransparently) {
  upstream.set_handler([](UpstreamConnection& conn) {
    if (!conn.read_request()) return;
    conn.write_response(200, "first");
    conn.sleep(100ms);
    conn.close();  // the upstream drops its idle keep-alive connection
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/1").body, "first");
  ASSERT_TRUE(upstream.wait_for_closed_connections(1, 3s));
  EXPECT_EQ(c.request("GET", "/2").body, "first");
  EXPECT_EQ(upstream.connection_count(), 2u);
}

// Whether an upstream connection goes back to the pool follows the response's version and Connection field
// (RFC 9112 §9.3): HTTP/1.1 stays unless `close`, HTTP/1.0 only with `keep-alive`. This upstream never closes
// a connection itself, so a connection the gateway wrongly kept would be reused and show in the count.
TEST_F(UpstreamTest, ResponsesConnectionFieldDecidesWhetherTheUpstreamConnectionIsReused) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (auto req = conn.read_request(5s)) {
      std::string head;
      if (req->target == "/close") {
        head = "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\n";
      } else if (req->target == "/http10") {
        head = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n";
      } else if (req->target == "/http10-keep-alive") {
        head = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n";
      } else if (req->target == "/malformed") {
        head = "HTTP/1.1 200 OK\r\nConnection: keep alive\r\nContent-Length: 2\r\n\r\n";
      } else {
        head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
      }
      if (!conn.write_raw(head + "ok")) return;
    }
  });
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  const auto get = [&](const std::string& target) {
    auto r = c.request("GET", target);
    EXPECT_EQ(r.status, 200u) << target << " " << r.body;
    EXPECT_EQ(r.body, "ok") << target;
    EXPECT_EQ(r.header("Connection"), "") << target;  // the upstream's Connection is hop by hop
  };
  get("/a");
  get("/b");
  EXPECT_EQ(upstream.connection_count(), 1u);  // HTTP/1.1: kept
  get("/close");
  get("/c");
  EXPECT_EQ(upstream.connection_count(), 2u);  // `close` among the tokens: not reused
  get("/http10");
  get("/d");
  EXPECT_EQ(upstream.connection_count(), 3u);  // HTTP/1.0 without keep-alive: not reused
  get("/http10-keep-alive");
  get("/e");
  EXPECT_EQ(upstream.connection_count(), 3u);  // HTTP/1.0 with keep-alive: kept
  // A Connection value that is not a list of tokens cannot say either: a bad response, not relayed.
  auto bad = c.request("GET", "/malformed");
  EXPECT_EQ(bad.status, 502u) << bad.body;
  EXPECT_THAT(bad.body, ::testing::HasSubstr("upstream.bad_response"));
}

TEST_F(UpstreamTest, PoolLimitAnswers503WhenAllConnectionsAreBusy) {
  upstream.set_handler([](UpstreamConnection& conn) {
    while (conn.read_request()) {
      conn.sleep(1500ms);
      conn.write_response(200, "slow");
    }
  });
  start_gateway(GatewayOptions{.upstream = "    max_connections: 1\n    max_idle: 1\n    retries: 0\n"});
  auto a = client();
  ASSERT_TRUE(a.connect());
  ASSERT_TRUE(a.send_raw("GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  ASSERT_TRUE(upstream.wait_for_requests(1, 3s));
  auto b = client();
  ASSERT_TRUE(b.connect());
  auto rb = b.request("GET", "/b");
  EXPECT_EQ(rb.status, 503u);
  EXPECT_THAT(rb.body, HasSubstr("upstream.overloaded"));
  EXPECT_EQ(a.read_response(5s).status, 200u);
}

TEST_F(UpstreamTest, TlsUpstreamIsVerifiedAgainstTheConfiguredCa) {
  RecordingUpstream secure(UpstreamOptions{.tls_cert_file = pki.server_cert(), .tls_key_file = pki.server_key()});
  start_gateway(GatewayOptions{.upstream = "    tls:\n      ca: " + pki.ca_cert() + "\n",
                               .targets = targets({secure.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/secure");
  EXPECT_EQ(r.status, 200u) << r.body;
  ASSERT_EQ(secure.requests().size(), 1u);
}

TEST_F(UpstreamTest, TlsUpstreamWithAnUntrustedCertificateIsRefused) {
  RecordingUpstream secure(UpstreamOptions{.tls_cert_file = pki.server_cert(), .tls_key_file = pki.server_key()});
  start_gateway(GatewayOptions{.upstream = "    retries: 0\n    tls:\n      ca: " + pki.foreign_ca_cert() + "\n",
                               .targets = targets({secure.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/secure").status, 502u);
  EXPECT_EQ(secure.requests().size(), 0u);
}

TEST_F(UpstreamTest, MutualTlsToTheUpstreamPresentsTheGatewayCertificate) {
  RecordingUpstream secure(UpstreamOptions{.tls_cert_file = pki.server_cert(),
                                           .tls_key_file = pki.server_key(),
                                           .client_ca_file = pki.ca_cert(),
                                           .require_client_cert = true});
  start_gateway(GatewayOptions{.upstream = "    tls:\n      ca: " + pki.ca_cert() + "\n      cert: " +
                                           pki.client().chain + "\n      key: " + pki.client().key + "\n",
                               .targets = targets({secure.port()})});
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/mtls").status, 200u);
  ASSERT_FALSE(secure.connections().empty());
  EXPECT_THAT(secure.connections()[0].client_subject, HasSubstr("CN=test-client"));
}

}  // namespace
}  // namespace gerbang::testing
