// Self-tests of the integration harness. They never start the gateway (GatewayUnderTest is exercised with a
// stand-in shell script), so they can run before the gateway exists.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

#include "harness/gateway_under_test.hpp"
#include "harness/raw_client.hpp"
#include "harness/recording_upstream.hpp"
#include "harness/temp_dir.hpp"
#include "harness/test_pki.hpp"
#include "harness/tls_client.hpp"

namespace gerbang::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- RecordingUpstream over plain TCP, driven byte-exactly by RawClient ---------------------------------

TEST(HarnessUpstream, EchoesRequestsAndRecordsExactBytesOnOneConnection) {
  RecordingUpstream upstream;
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());

  const std::string first = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
  ASSERT_TRUE(client.send(first));
  HttpResponse r1 = client.read_response(5s);
  ASSERT_TRUE(r1.complete) << r1.error;
  EXPECT_EQ(r1.status, 200u);
  EXPECT_EQ(r1.header("x-upstream-connection"), "0");
  EXPECT_EQ(r1.header("CONTENT-TYPE"), "application/json");
  EXPECT_TRUE(contains(r1.body, R"("target":"/a?b=1")")) << r1.body;
  EXPECT_TRUE(contains(r1.body, R"(["X-Dup","1"],["x-dup","2"])")) << r1.body;

  const std::string second =
      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  ASSERT_TRUE(client.send(second));
  HttpResponse r2 = client.read_response(5s);
  ASSERT_TRUE(r2.complete) << r2.error;
  EXPECT_TRUE(contains(r2.body, R"("body_bytes":5,"body":"hello")")) << r2.body;

  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  EXPECT_EQ(upstream.connection_count(), 1u);
  EXPECT_EQ(upstream.raw_bytes(), first + second);
  auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].header_values("X-DUP"), (std::vector<std::string>{"1", "2"}));
  EXPECT_TRUE(requests[1].chunked);
  EXPECT_EQ(requests[1].body, "hello");
  EXPECT_EQ(requests[1].connection, 0u);
}

TEST(HarnessUpstream, HonoursConnectionClose) {
  RecordingUpstream upstream;
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  HttpResponse r = client.read_response(5s);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(client.wait_for_close(5s));
  EXPECT_TRUE(client.closed_by_peer());
  EXPECT_TRUE(upstream.wait_for_closed_connections(1, 5s));
}

TEST(HarnessUpstream, SlowlySentRequestArrivesWhole) {
  RecordingUpstream upstream;
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  const std::string request = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(client.send_slowly(request, 1ms));
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  EXPECT_EQ(upstream.requests()[0].target, "/slow");
  EXPECT_EQ(upstream.raw_bytes(0), request);
}

TEST(HarnessUpstream, ScriptedGarbageStatusLineIsAParseError) {
  RecordingUpstream upstream([](UpstreamConnection& c) {
    if (c.read_request()) {
      c.write_raw("HTTP/1.1 2x0 Broken\r\n\r\n");
    }
  });
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  HttpResponse r = client.read_response(5s);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.status, 0u);
  EXPECT_FALSE(r.error.empty());
}

TEST(HarnessUpstream, ScriptedHalfBodyThenResetIsIncomplete) {
  RecordingUpstream upstream([](UpstreamConnection& c) {
    if (c.read_request()) {
      c.write_raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
      c.reset();
    }
  });
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  HttpResponse r = client.read_response(5s);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "0123456789");
  EXPECT_TRUE(client.closed_by_peer());
}

TEST(HarnessUpstream, StreamsALargeChunkedResponseGeneratedOnTheFly) {
  constexpr std::size_t kChunk = 64 * 1024;
  constexpr std::size_t kChunks = 256;  // 16 MiB: the 1 GiB variant belongs to the slow gateway tests
  RecordingUpstream upstream([](UpstreamConnection& c) {
    if (!c.read_request()) {
      return;
    }
    if (!c.write_raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) {
      return;
    }
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", kChunk);
    std::string chunk = size_line + std::string(kChunk, 'z') + "\r\n";
    for (std::size_t i = 0; i < kChunks; ++i) {
      if (!c.write_raw(chunk)) {
        return;
      }
    }
    c.write_raw("0\r\n\r\n");
  });
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  ReadOptions options;
  options.discard_body = true;
  options.timeout = 30s;
  HttpResponse r = client.read_response(options);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body_bytes, kChunk * kChunks);
  EXPECT_TRUE(r.body.empty());
}

TEST(HarnessUpstream, StopInterruptsAHandlerThatNeverAnswers) {
  auto upstream = std::make_unique<RecordingUpstream>([](UpstreamConnection& c) {
    c.read_request();
    c.sleep(std::chrono::hours(1));
  });
  RawClient client(upstream->port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream->wait_for_requests(1, 5s));
  auto started = Clock::now();
  upstream.reset();
  EXPECT_LT(Clock::now() - started, 2s);
}

// --- timeouts: no call may hang ---------------------------------------------------------------------------

TEST(HarnessTimeouts, ReadResponseReturnsWithinItsTimeoutWhenTheServerNeverAnswers) {
  RecordingUpstream upstream([](UpstreamConnection& c) {
    c.read_request();
    c.sleep(std::chrono::hours(1));
  });
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto started = Clock::now();
  HttpResponse r = client.read_response(300ms);
  auto took = Clock::now() - started;
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.error, "timeout");
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
}

TEST(HarnessTimeouts, ReadRawEndsAtItsTimeoutAndKeepsTheConnection) {
  RecordingUpstream upstream;
  RawClient client(upstream.port());
  ASSERT_TRUE(client.connect());
  auto started = Clock::now();
  EXPECT_EQ(client.read_raw(200ms), "");
  EXPECT_LT(Clock::now() - started, 2s);
  // Still usable afterwards.
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(client.read_response(5s).complete);
}

TEST(HarnessTimeouts, TlsRequestReturnsWithinItsTimeout) {
  TestPki pki;
  UpstreamOptions options;
  options.tls_cert_file = pki.server_cert();
  options.tls_key_file = pki.server_key();
  RecordingUpstream upstream(options, [](UpstreamConnection& c) {
    c.read_request();
    c.sleep(std::chrono::hours(1));
  });
  TlsClient client(pki, upstream.port());
  ASSERT_TRUE(client.connect());
  auto started = Clock::now();
  HttpResponse r = client.request("GET", "/", {}, {}, 300ms);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.error, "timeout");
  EXPECT_LT(Clock::now() - started, 2s);
}

TEST(HarnessTimeouts, TlsHandshakeWithASilentServerTimesOut) {
  // A plain-TCP upstream that never speaks: the ClientHello gets no answer.
  RecordingUpstream upstream([](UpstreamConnection& c) { c.sleep(std::chrono::hours(1)); });
  TlsClientOptions options;
  options.verify = false;
  options.connect_timeout = 300ms;
  TlsClient client(upstream.port(), options);
  auto started = Clock::now();
  auto connected = client.connect();
  EXPECT_FALSE(connected);
  EXPECT_TRUE(contains(client.last_error(), "timeout")) << client.last_error();
  EXPECT_LT(Clock::now() - started, 2s);
}

// --- TLS: RecordingUpstream with TestPki certificates, TlsClient --------------------------------------------

UpstreamOptions tls_upstream(const TestPki& pki) {
  UpstreamOptions options;
  options.tls_cert_file = pki.server_cert();
  options.tls_key_file = pki.server_key();
  return options;
}

TEST(HarnessTls, VerifiesTheServerAgainstTheTestPkiCa) {
  TestPki pki;
  RecordingUpstream upstream(tls_upstream(pki));
  TlsClient client(pki, upstream.port());
  ASSERT_TRUE(client.connect());
  EXPECT_EQ(client.protocol_version(), "TLSv1.3");
  EXPECT_FALSE(client.cipher().empty());
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_TRUE(contains(client.peer_subject(), "CN=localhost")) << client.peer_subject();
  auto san = client.peer_san();
  EXPECT_NE(std::find(san.begin(), san.end(), "DNS:localhost"), san.end());
  EXPECT_NE(std::find(san.begin(), san.end(), "IP:127.0.0.1"), san.end());

  HttpResponse r1 = client.request("GET", "/one", {{"X-Test", "1"}});
  ASSERT_TRUE(r1.complete) << r1.error;
  EXPECT_EQ(r1.status, 200u);
  HttpResponse r2 = client.request("POST", "/two", {}, "payload");
  ASSERT_TRUE(r2.complete) << r2.error;
  EXPECT_TRUE(contains(r2.body, R"("body":"payload")")) << r2.body;
  EXPECT_EQ(r2.header("X-Upstream-Connection"), "0");  // keep-alive on one connection

  ASSERT_TRUE(upstream.wait_for_requests(2, 5s));
  EXPECT_TRUE(contains(upstream.raw_bytes(), "GET /one HTTP/1.1\r\nHost: localhost\r\nX-Test: 1\r\n\r\n"));
  auto info = upstream.connections();
  ASSERT_EQ(info.size(), 1u);
  EXPECT_TRUE(info[0].tls_ok);
  EXPECT_EQ(info[0].sni, "localhost");
}

TEST(HarnessTls, FailsAgainstTheWrongCa) {
  TestPki pki;
  RecordingUpstream upstream(tls_upstream(pki));
  TlsClientOptions options;
  options.ca_file = pki.foreign_ca_cert();
  TlsClient client(pki, upstream.port(), options);
  auto connected = client.connect();
  EXPECT_FALSE(connected);
  EXPECT_TRUE(contains(client.last_error(), "certificate verify")) << client.last_error();
}

TEST(HarnessTls, FailsWhenTheNameDoesNotMatch) {
  TestPki pki;
  RecordingUpstream upstream(tls_upstream(pki));
  TlsClientOptions options;
  options.sni = "not-localhost.example";
  TlsClient client(pki, upstream.port(), options);
  EXPECT_FALSE(client.connect());
}

TEST(HarnessTls, ServesACertificateForAnArbitrarySniName) {
  TestPki pki;
  CertFiles api = pki.issue_server_for("api", {"api.example.test"});
  UpstreamOptions upstream_options;
  upstream_options.tls_cert_file = api.chain;
  upstream_options.tls_key_file = api.key;
  RecordingUpstream upstream(upstream_options);
  TlsClientOptions options;
  options.sni = "api.example.test";
  TlsClient client(pki, upstream.port(), options);
  ASSERT_TRUE(client.connect());
  EXPECT_TRUE(contains(client.peer_subject(), "CN=api.example.test")) << client.peer_subject();
}

TEST(HarnessTls, RsaServerCertificateOverTls12) {
  TestPki pki;
  UpstreamOptions upstream_options;
  upstream_options.tls_cert_file = pki.server_rsa().chain;
  upstream_options.tls_key_file = pki.server_rsa().key;
  RecordingUpstream upstream(upstream_options);
  TlsClientOptions options;
  options.max_version = TlsVersion::tls1_2;
  TlsClient client(pki, upstream.port(), options);
  ASSERT_TRUE(client.connect());
  EXPECT_EQ(client.protocol_version(), "TLSv1.2");
  EXPECT_TRUE(contains(client.cipher(), "RSA")) << client.cipher();
  EXPECT_TRUE(client.request("GET", "/").complete);
}

class HarnessClientCert : public ::testing::Test {
 protected:
  HarnessClientCert() : upstream_(options()) {}
  UpstreamOptions options() {
    UpstreamOptions o = tls_upstream(pki_);
    o.client_ca_file = pki_.ca_cert();
    o.require_client_cert = true;
    return o;
  }
  // With TLS 1.3 the client finishes its handshake before the server has checked the client certificate, so
  // a refusal may show up at connect() or only at the first request.
  bool exchange_works(const CertFiles* cert) {
    TlsClientOptions o;
    if (cert != nullptr) {
      o.client_cert_file = cert->chain;
      o.client_key_file = cert->key;
    }
    TlsClient client(pki_, upstream_.port(), o);
    if (!client.connect()) {
      return false;
    }
    return client.request("GET", "/", {}, {}, 5s).status == 200;
  }
  TestPki pki_;
  RecordingUpstream upstream_;
};

TEST_F(HarnessClientCert, GoodClientCertificateIsAccepted) {
  EXPECT_TRUE(exchange_works(&pki_.client()));
  auto info = upstream_.connections();
  ASSERT_EQ(info.size(), 1u);
  EXPECT_TRUE(contains(info[0].client_subject, "CN=test-client")) << info[0].client_subject;
}

TEST_F(HarnessClientCert, MissingExpiredOrForeignClientCertificatesAreRefused) {
  EXPECT_FALSE(exchange_works(nullptr));
  EXPECT_FALSE(exchange_works(&pki_.expired_client()));
  EXPECT_FALSE(exchange_works(&pki_.foreign_client()));
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST(HarnessTls, ResumesASession) {
  TestPki pki;
  RecordingUpstream upstream(tls_upstream(pki));
  std::shared_ptr<const TlsSession> session;
  {
    TlsClient first(pki, upstream.port());
    ASSERT_TRUE(first.connect());
    EXPECT_FALSE(first.session_reused());
    ASSERT_TRUE(first.request("GET", "/").complete);  // TLS 1.3 tickets arrive after the handshake
    session = first.session();
    ASSERT_NE(session, nullptr);
  }
  TlsClientOptions options;
  options.resume = session;
  TlsClient second(pki, upstream.port(), options);
  ASSERT_TRUE(second.connect());
  EXPECT_TRUE(second.session_reused());
}

// --- TestPki files ----------------------------------------------------------------------------------------

TEST(HarnessPki, KeysAreWrittenOwnerOnly) {
  TestPki pki;
  struct stat st {};
  ASSERT_EQ(::stat(pki.server_key().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(pki.ca_cert().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  std::string dir = pki.dir();
  {
    TestPki scoped;
    dir = scoped.dir();
  }
  EXPECT_NE(::stat(dir.c_str(), &st), 0) << "the destructor should remove " << dir;
}

// --- GatewayUnderTest against a stand-in script (the real binary is tested by the gateway's own tests) -----

class HarnessGatewayProcess : public ::testing::Test {
 protected:
  // Mimics the gateway's process contract: --check-config, --config/--ready-file, SIGTERM.
  std::string fake_gateway() {
    return scripts_.write("fake-gerbang", R"SH(#!/bin/sh
if [ "$1" = "--check-config" ]; then echo "config error in $2" >&2; exit 3; fi
if grep -q fail-now "$2"; then echo boom >&2; exit 7; fi
admin=$(sed -n 's/^admin_port: //p' "$2")
trap 'echo bye; exit 0' TERM
printf 'listener main 4431\nredirect main 8081\nadmin %s\nready\n' "$admin" > "$4.tmp" && mv "$4.tmp" "$4"
echo "started in $(pwd)"
while :; do sleep 0.05; done
)SH",
                          0755);
  }
  TempDir scripts_{"gerbang-fake"};
};

TEST_F(HarnessGatewayProcess, StartsReadsThePortsAndStops) {
  RecordingUpstream admin;  // stands in for the admin endpoint
  GatewayUnderTest gw(fake_gateway());
  ASSERT_TRUE(gw.start("admin_port: " + std::to_string(admin.port()) + "\n"));
  EXPECT_EQ(gw.port("main"), 4431);
  EXPECT_EQ(gw.redirect_port("main"), 8081);
  EXPECT_EQ(gw.admin_port(), admin.port());
  EXPECT_GT(gw.pid(), 0);
  EXPECT_TRUE(gw.running());

  HttpResponse health = gw.admin_get("/healthz");
  ASSERT_TRUE(health.complete) << health.error;
  EXPECT_EQ(health.status, 200u);
  EXPECT_TRUE(contains(health.body, R"("target":"/healthz")"));

  EXPECT_TRUE(gw.wait_for_output("started in " + gw.dir(), 5s));
  gw.signal(SIGTERM);
  int status = -1;
  ASSERT_TRUE(gw.wait_for_exit(5s, &status));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(contains(gw.stdout_text(), "bye"));
}

TEST_F(HarnessGatewayProcess, EarlyExitFailsWithTheChildsStderr) {
  GatewayUnderTest gw(fake_gateway());
  auto started = gw.start("fail-now\n");
  EXPECT_FALSE(started);
  EXPECT_TRUE(contains(started.message(), "boom")) << started.message();
  EXPECT_TRUE(contains(started.message(), "exit code 7")) << started.message();
}

TEST_F(HarnessGatewayProcess, CheckConfigReportsExitCodeAndStderr) {
  GatewayUnderTest gw(fake_gateway());
  ProcessResult result = gw.check_config_text("anything: 1\n");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_TRUE(contains(result.stderr_text, "config error in " + gw.dir() + "/check.yaml")) << result.stderr_text;
}

TEST_F(HarnessGatewayProcess, StopEndsTheChild) {
  GatewayUnderTest gw(fake_gateway());
  ASSERT_TRUE(gw.start("admin_port: 1\n"));
  int status = gw.stop();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_FALSE(gw.running());
}

}  // namespace
}  // namespace gerbang::testing
