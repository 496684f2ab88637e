// Idle keep-alive connections are parked: between requests a connection keeps only its socket, its TLS state
// and who its peer is (gateway/connection.cpp, ConnCore), not the buffers, parser and coroutine frames of a
// request, so thousands of idle clients cost little more than OpenSSL's own per-connection state. Parked
// connections wake up for their next request with everything they had (TLS identity, configuration).
#include <gmock/gmock.h>

#include <memory>
#include <thread>
#include <vector>

#include "gateway_fixture.hpp"
#include "harness/proc_status.hpp"

namespace gerbang::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kIdle = 1500;
// Per idle connection, in KiB of the gateway's resident memory. Measured ~14.7 KiB with the parked connection
// and OpenSSL's 0.5-16 KiB blocks on glibc's malloc (~15.4 with all of them on mimalloc, whose size classes
// round the 7.6 KB SSL object up to 8 KiB; ~16.5 before its waits were allocated at their exact size and the
// client-certificate identity was kept only when there is one), of which OpenSSL's own per-connection state
// (SSL object, record ciphers, session) is ~13 KiB; ~20 KiB when
// a waiting connection kept its request object and coroutine frames; ~77 KiB with Asio's ssl::stream. Under
// ASan every allocation has red zones and freed memory sits in quarantine: there the test only shows that the
// connections are served and wake up.
#ifdef GERBANG_SANITIZED
constexpr std::uint64_t kMaxKiBPerConnection = 200;
#else
constexpr std::uint64_t kMaxKiBPerConnection = 16;
#endif

class IdleConnectionsTest : public GatewayTest {};

// A gateway built with mimalloc gives OpenSSL's medium blocks (the SSL object among them) to glibc's malloc;
// it says so in its version line, which is how this test knows the routing took (it must be set before
// OpenSSL's first allocation, or it is refused). Sanitizer builds use their own allocator and do not route.
TEST_F(IdleConnectionsTest, OpenSslMediumBlocksGoToGlibcWhereMimallocServesTheRest) {
  const auto r = run_process({GatewayUnderTest::default_binary(), "--version"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  if (r.stdout_text.find("mimalloc") == std::string::npos) {
    EXPECT_THAT(r.stdout_text, ::testing::HasSubstr("system malloc"));
    GTEST_SKIP() << "built without mimalloc: " << r.stdout_text;
  }
  EXPECT_THAT(r.stdout_text, ::testing::HasSubstr("OpenSSL's 0.5-16 KiB blocks on glibc malloc"));
}

TEST_F(IdleConnectionsTest, ThousandsOfIdleKeepAliveConnectionsStayCheapAndWakeUp) {
  ASSERT_GE(raise_open_file_limit(4 * kIdle + 256), 2 * kIdle + 128u) << "open-file limit too low for the test";
  start_gateway(GatewayOptions{.listener = "    max_connections_per_ip: 4000\n"});

  auto open_one = [&](std::vector<std::unique_ptr<TlsClient>>& into) {
    auto c = std::make_unique<TlsClient>(pki, port());
    ASSERT_TRUE(c->connect());
    auto r = c->request("GET", "/hello");
    ASSERT_EQ(r.status, 200u) << r.body;
    into.push_back(std::move(c));
  };
  // Warm-up: the allocator's pools, the upstream pool and the TLS context are in use before the baseline.
  {
    std::vector<std::unique_ptr<TlsClient>> warm;
    for (int i = 0; i < 50; ++i) {
      ASSERT_NO_FATAL_FAILURE(open_one(warm));
    }
  }
  std::this_thread::sleep_for(300ms);
  const std::uint64_t base = proc_status_kib(gw.pid(), "VmRSS");
  ASSERT_GT(base, 0u);

  std::vector<std::unique_ptr<TlsClient>> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    ASSERT_NO_FATAL_FAILURE(open_one(idle));
  }
  std::this_thread::sleep_for(300ms);
  const std::uint64_t loaded = proc_status_kib(gw.pid(), "VmRSS");
  const double per_connection = static_cast<double>(loaded - base) / kIdle;
  std::cout << "[ measure  ] gateway RSS " << base / 1024 << " MiB before, " << loaded / 1024 << " MiB with " << kIdle
            << " idle TLS connections: " << per_connection << " KiB per connection\n";
  EXPECT_LT(per_connection, static_cast<double>(kMaxKiBPerConnection));

  // Every parked connection is still open and answers its next request (a sample of them, from both ends).
  const auto metrics = gw.admin_get("/metrics").body;
  EXPECT_THAT(metrics, ::testing::HasSubstr("gerbang_connections_open{listener=\"main\"} " + std::to_string(kIdle) + "\n"));
  for (int i = 0; i < kIdle; i += 97) {
    auto r = idle[static_cast<std::size_t>(i)]->request("GET", "/again");
    EXPECT_EQ(r.status, 200u) << "connection " << i << ": " << r.body;
  }
  auto r = idle.back()->request("GET", "/last");
  EXPECT_EQ(r.status, 200u);
}

// A parked connection keeps what its TLS handshake established: the client certificate maps to the same
// consumer on every request of the connection, not only the first.
TEST_F(IdleConnectionsTest, ParkedConnectionKeepsItsClientCertificateIdentity) {
  GatewayOptions o;
  o.listener_tls = "      client_auth: optional\n      client_ca: " + pki.ca_cert() + "\n";
  o.top = "consumers:\n"
          "  - id: dept-app\n"
          "    credentials:\n"
          "      mtls:\n"
          "        - san_uri: \"spiffe://gerbang.test/client\"\n";
  o.route = "    auth:\n      methods: [mtls]\n    allow:\n      - consumers: [dept-app]\n";
  start_gateway(o);
  auto c = mtls_client(pki.client());
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 3; ++i) {
    auto r = c.request("GET", "/who/" + std::to_string(i));
    ASSERT_EQ(r.status, 200u) << r.body;
    std::this_thread::sleep_for(50ms);  // the connection parks between requests
  }
  ASSERT_TRUE(upstream.wait_for_requests(3, 5s));
  const auto seen = upstream.requests();
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& req : seen) {
    EXPECT_EQ(req.header("X-Gerbang-Consumer"), "dept-app") << req.target;
    EXPECT_EQ(req.header("X-Gerbang-Client-Cert-SHA256"), pki.client().sha256_fingerprint) << req.target;
  }
}

}  // namespace
}  // namespace gerbang::testing
