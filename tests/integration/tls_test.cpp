// TLS termination through the real gateway binary: versions, cipher policy, ALPN, SNI certificate selection,
// ECDSA/RSA selection, session resumption, plaintext on the TLS port, the redirect port and client certificates.
#include <gmock/gmock.h>

#include <thread>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// One more item for listeners[0].tls.certificates (make_config's own certificate stays first: the default).
std::string cert_item(const std::string& cert, const std::string& key, const std::vector<std::string>& names = {}) {
  std::string out = "        - cert: " + cert + "\n          key: " + key + "\n";
  if (!names.empty()) {
    out += "          server_names: [";
    for (std::size_t i = 0; i < names.size(); ++i) {
      out += (i ? ", \"" : "\"") + names[i] + "\"";
    }
    out += "]\n";
  }
  return out;
}

std::string client_auth(const std::string& mode, const std::string& ca) {
  return "      client_auth: " + mode + "\n      client_ca: " + ca + "\n";
}

class TlsTest : public GatewayTest {
 protected:
  // Polls /metrics (bounded) until it contains `line`; returns the last body seen otherwise.
  ::testing::AssertionResult wait_for_metric(const std::string& line, std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    for (;;) {
      auto r = gw.admin_get("/metrics");
      last = r.body;
      if (r.status == 200 && last.find(line) != std::string::npos) {
        return ::testing::AssertionSuccess();
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure() << "metric line '" << line << "' not seen; last /metrics:\n" << last;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  // A handshake the gateway must refuse. With TLS 1.3 the client may finish its side of the handshake before
  // the server rejects it, so "refused" means: no handshake, or no HTTP response at all on the connection.
  void expect_refused(TlsClientOptions options, const std::string& what) {
    auto c = client(std::move(options));
    auto connected = c.connect();
    if (connected) {
      auto r = c.request("GET", "/must-not-arrive", {}, {}, 5s);
      EXPECT_FALSE(r.complete) << what << ": got a response with status " << r.status;
      EXPECT_EQ(r.status, 0u) << what;
    } else {
      EXPECT_THAT(connected.message(), Not(HasSubstr("TlsClient options"))) << what << ": the client itself was misconfigured";
    }
    for (const auto& req : upstream.requests()) {
      EXPECT_NE(req.target, "/must-not-arrive") << what << ": the request reached the upstream";
    }
  }
};

TEST_F(TlsTest, Tls13IsNegotiatedByDefault) {
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.protocol_version(), "TLSv1.3");
  auto r = c.request("GET", "/v13");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
}

TEST_F(TlsTest, Tls12IsNegotiatedWhenTheClientCapsAtIt) {
  start_gateway();
  TlsClientOptions o;
  o.max_version = TlsVersion::tls1_2;
  auto c = client(o);
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.protocol_version(), "TLSv1.2");
  EXPECT_THAT(c.cipher(), HasSubstr("ECDHE-ECDSA")) << "forward-secret suite with the ECDSA certificate";
  EXPECT_THAT(c.cipher(), AnyOf(HasSubstr("GCM"), HasSubstr("CHACHA20")));
  auto r = c.request("GET", "/v12");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
}

TEST_F(TlsTest, MinVersion13RefusesTls12) {
  GatewayOptions g;
  g.listener_tls = "      min_version: \"1.3\"\n";
  start_gateway(g);
  TlsClientOptions o;
  o.max_version = TlsVersion::tls1_2;
  auto c = client(o);
  EXPECT_FALSE(c.connect());
  auto ok = client();
  ASSERT_TRUE(ok.connect());
  EXPECT_EQ(ok.protocol_version(), "TLSv1.3");
}

TEST_F(TlsTest, Tls11AndTls10AreRefused) {
  start_gateway();
  for (auto v : {TlsVersion::tls1_1, TlsVersion::tls1_0}) {
    TlsClientOptions o;
    o.max_version = v;
    auto c = client(o);
    auto connected = c.connect();
    EXPECT_FALSE(connected) << "negotiated " << c.protocol_version();
    EXPECT_THAT(connected.message(), Not(HasSubstr("TlsClient options")));
  }
  // The listener still works afterwards.
  auto c = client();
  ASSERT_TRUE(c.connect());
}

TEST_F(TlsTest, Tls12WithoutEcdheOrAeadIsRefused) {
  // Both key types are served, so a refusal is about the suite, not about a missing RSA certificate.
  GatewayOptions g;
  g.listener_tls = cert_item(pki.server_rsa().chain, pki.server_rsa().key);
  start_gateway(g);
  // SECLEVEL=0 so that our own OpenSSL offers these suites: refusing them is the gateway's job.
  for (const std::string suite : {"AES128-SHA256", "AES128-GCM-SHA256", "AES256-SHA", "ECDHE-ECDSA-AES128-SHA",
                                  "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256"}) {
    TlsClientOptions o;
    o.max_version = TlsVersion::tls1_2;
    o.cipher_list = suite + ":@SECLEVEL=0";
    auto c = client(o);
    auto connected = c.connect();
    EXPECT_FALSE(connected) << suite << " was accepted (" << c.cipher() << ")";
    EXPECT_THAT(connected.message(), Not(HasSubstr("TlsClient options"))) << suite;
  }
  // Control: an ECDHE + AEAD suite with the same client settings works.
  TlsClientOptions o;
  o.max_version = TlsVersion::tls1_2;
  o.cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0";
  auto c = client(o);
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.cipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");
  o.cipher_list = "ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0";
  auto rsa = client(o);
  ASSERT_TRUE(rsa.connect());
  EXPECT_EQ(rsa.cipher(), "ECDHE-RSA-AES128-GCM-SHA256");
}

TEST_F(TlsTest, AlpnSelectsHttp11) {
  start_gateway();
  TlsClientOptions o;
  o.alpn = {"h2", "http/1.1"};
  auto c = client(o);
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.alpn(), "http/1.1");
  auto r = c.request("GET", "/alpn");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
}

TEST_F(TlsTest, ClientOfferingOnlyH2StillConnectsWithoutAlpn) {
  start_gateway();
  TlsClientOptions o;
  o.alpn = {"h2"};
  auto c = client(o);
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.alpn(), "");
  auto r = c.request("GET", "/no-alpn");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
}

TEST_F(TlsTest, ClientWithoutAlpnConnects) {
  start_gateway();
  TlsClientOptions o;
  o.alpn = {};
  auto c = client(o);
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.alpn(), "");
}

TEST_F(TlsTest, SniChoosesTheCertificateAndUnknownNamesGetTheDefault) {
  const auto a = pki.issue_server_for("a", {"a.test"});
  const auto b = pki.issue_server_for("b", {"b.test"});
  const auto x = pki.issue_server_for("x", {"x.test"});
  GatewayOptions g;
  // a and b serve the DNS names of their certificates; x serves only what server_names says.
  g.listener_tls = cert_item(a.chain, a.key) + cert_item(b.chain, b.key) + cert_item(x.chain, x.key, {"alias.test"});
  start_gateway(g);

  for (const std::string name : {"a.test", "b.test"}) {
    TlsClientOptions o;
    o.sni = name;
    auto c = client(o);
    ASSERT_TRUE(c.connect()) << name;
    EXPECT_THAT(c.peer_san(), Contains("DNS:" + name)) << name;
    EXPECT_THAT(c.peer_subject(), HasSubstr("CN=" + name)) << name;
    auto r = c.request("GET", "/sni");
    ASSERT_TRUE(r.complete) << name << ": " << r.error;
    EXPECT_EQ(r.status, 200u) << name;
  }
  {
    TlsClientOptions o;
    o.sni = "ALIAS.test";  // SNI matching is case-insensitive
    o.verify_host = "x.test";
    auto c = client(o);
    ASSERT_TRUE(c.connect());
    EXPECT_THAT(c.peer_san(), Contains("DNS:x.test"));
  }
  {
    TlsClientOptions o;
    o.sni = "x.test";  // x's own SAN is not served: server_names replaces it, so this gets the default
    o.verify_host = "localhost";
    auto c = client(o);
    ASSERT_TRUE(c.connect());
    EXPECT_THAT(c.peer_subject(), HasSubstr("CN=localhost"));
  }
  for (const std::string name : {"unknown.test", ""}) {
    TlsClientOptions o;
    o.sni = name;
    o.verify_host = "localhost";
    auto c = client(o);
    ASSERT_TRUE(c.connect()) << "SNI '" << name << "'";
    EXPECT_THAT(c.peer_subject(), HasSubstr("CN=localhost")) << "SNI '" << name << "'";
    EXPECT_THAT(c.peer_san(), Contains("DNS:localhost"));
    EXPECT_THAT(c.peer_san(), Not(Contains("DNS:a.test")));
  }
}

TEST_F(TlsTest, EcdsaAndRsaCertificatesForTheSameNamesAreChosenByTheClientsSuites) {
  GatewayOptions g;
  g.listener_tls = cert_item(pki.server_rsa().chain, pki.server_rsa().key);
  start_gateway(g);
  {
    // A TLS 1.2 RSA-authenticated suite can only be negotiated with the RSA certificate.
    TlsClientOptions o;
    o.max_version = TlsVersion::tls1_2;
    o.cipher_list = "ECDHE-RSA-AES128-GCM-SHA256";
    auto c = client(o);
    ASSERT_TRUE(c.connect());
    EXPECT_EQ(c.cipher(), "ECDHE-RSA-AES128-GCM-SHA256");
    auto r = c.request("GET", "/rsa");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
  }
  {
    TlsClientOptions o;
    o.max_version = TlsVersion::tls1_2;
    o.cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";
    auto c = client(o);
    ASSERT_TRUE(c.connect());
    EXPECT_THAT(c.cipher(), HasSubstr("ECDHE-ECDSA"));
  }
}

TEST_F(TlsTest, SessionsResume) {
  start_gateway();
  for (auto v : {TlsVersion::tls1_3, TlsVersion::tls1_2}) {
    TlsClientOptions o;
    o.max_version = v;
    auto first = client(o);
    ASSERT_TRUE(first.connect());
    EXPECT_FALSE(first.session_reused());
    auto r = first.request("GET", "/first");
    ASSERT_TRUE(r.complete) << r.error;
    auto session = first.session();
    ASSERT_NE(session, nullptr) << "no resumable session (" << first.protocol_version() << ")";
    first.shutdown_tls();

    o.resume = session;
    auto second = client(o);
    ASSERT_TRUE(second.connect());
    EXPECT_TRUE(second.session_reused()) << second.protocol_version();
    auto r2 = second.request("GET", "/second");
    ASSERT_TRUE(r2.complete) << r2.error;
    EXPECT_EQ(r2.status, 200u);
  }
}

TEST_F(TlsTest, NoResumptionWithTicketsAndCacheOff) {
  GatewayOptions g;
  g.listener_tls = "      session_tickets: false\n      session_cache: false\n";
  start_gateway(g);
  for (auto v : {TlsVersion::tls1_3, TlsVersion::tls1_2}) {
    TlsClientOptions o;
    o.max_version = v;
    auto first = client(o);
    ASSERT_TRUE(first.connect());
    auto r = first.request("GET", "/first");
    ASSERT_TRUE(r.complete) << r.error;
    auto session = first.session();  // may be null: nothing resumable was issued
    first.shutdown_tls();

    o.resume = session;
    auto second = client(o);
    ASSERT_TRUE(second.connect());
    EXPECT_FALSE(second.session_reused()) << second.protocol_version();
    auto r2 = second.request("GET", "/second");
    ASSERT_TRUE(r2.complete) << r2.error;
  }
}

TEST_F(TlsTest, PlaintextHttpOnTheTlsPortIsClosedWithoutAReplyAndCounted) {
  start_gateway();
  RawClient raw(port());
  ASSERT_TRUE(raw.connect());
  ASSERT_TRUE(raw.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  ASSERT_TRUE(raw.wait_for_close(5s));
  EXPECT_EQ(raw.read_raw(100ms), "") << "no HTTP (or any) response bytes";
  EXPECT_TRUE(wait_for_metric(
      "gerbang_tls_handshake_failures_total{listener=\"main\",reason=\"plaintext_on_tls_port\"} 1"));
  EXPECT_EQ(upstream.connection_count(), 0u);
}

TEST_F(TlsTest, GarbageInsteadOfAClientHelloIsClosed) {
  start_gateway();
  {
    RawClient raw(port());
    ASSERT_TRUE(raw.connect());
    ASSERT_TRUE(raw.send(std::string("\x00\xff\x13garbage\r\n\r\n", 13)));
    EXPECT_TRUE(raw.wait_for_close(5s));
  }
  {
    // Starts like a TLS handshake record, then nonsense.
    RawClient raw(port());
    ASSERT_TRUE(raw.connect());
    ASSERT_TRUE(raw.send(std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, '\x7f')));
    EXPECT_TRUE(raw.wait_for_close(5s));
    EXPECT_THAT(raw.read_raw(100ms), Not(HasSubstr("HTTP/")));
  }
  auto c = client();
  ASSERT_TRUE(c.connect()) << "the listener survives";
  EXPECT_EQ(c.request("GET", "/").status, 200u);
}

TEST_F(TlsTest, RedirectPortAnswers301ToHttps) {
  GatewayOptions g;
  g.listener = "    redirect_from: \"127.0.0.1:0\"\n";
  start_gateway(g);
  const auto rport = gw.redirect_port("main");
  ASSERT_NE(rport, 0);
  RawClient raw(rport);
  ASSERT_TRUE(raw.connect());
  ASSERT_TRUE(raw.send("GET /path?q HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto r = raw.read_response();
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 301u);
  EXPECT_EQ(r.header("Location"), "https://localhost:" + std::to_string(port()) + "/path?q");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(raw.wait_for_close(5s));
  EXPECT_EQ(upstream.connection_count(), 0u);
}

TEST_F(TlsTest, ClientAuthRequiredRefusesMissingExpiredAndForeignCertificates) {
  GatewayOptions g;
  g.listener_tls = client_auth("required", pki.ca_cert());
  start_gateway(g);
  expect_refused({}, "no client certificate");
  {
    TlsClientOptions o;
    o.client_cert_file = pki.expired_client().chain;
    o.client_key_file = pki.expired_client().key;
    expect_refused(o, "expired client certificate");
  }
  {
    TlsClientOptions o;
    o.client_cert_file = pki.foreign_client().chain;
    o.client_key_file = pki.foreign_client().key;
    expect_refused(o, "client certificate from a foreign CA");
  }
  EXPECT_EQ(upstream.requests().size(), 0u);
}

TEST_F(TlsTest, ClientAuthRequiredAcceptsAGoodCertificateAndLogsItsFingerprint) {
  GatewayOptions g;
  g.listener_tls = client_auth("required", pki.ca_cert());
  start_gateway(g);
  auto c = mtls_client(pki.client());
  ASSERT_TRUE(c.connect());
  auto r = c.request("GET", "/mtls");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  ASSERT_FALSE(pki.client().sha256_fingerprint.empty());
  EXPECT_TRUE(gw.wait_for_output("\"client_cert_sha256\":\"" + pki.client().sha256_fingerprint + "\"", 5s))
      << "access log:\n" << gw.stdout_text();
}

TEST_F(TlsTest, ClientAuthOptionalAcceptsBothAndLogsTheFingerprintWhenPresent) {
  GatewayOptions g;
  g.listener_tls = client_auth("optional", pki.ca_cert());
  start_gateway(g);
  const std::string fp = pki.client().sha256_fingerprint;
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/anonymous");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
    ASSERT_TRUE(gw.wait_for_output("/anonymous", 5s));
    EXPECT_THAT(gw.stdout_text(), Not(HasSubstr(fp)));
  }
  {
    TlsClientOptions o;
    o.client_cert_file = pki.client().chain;
    o.client_key_file = pki.client().key;
    auto c = client(o);
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/identified");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
    EXPECT_TRUE(gw.wait_for_output("\"client_cert_sha256\":\"" + fp + "\"", 5s)) << gw.stdout_text();
  }
}

}  // namespace
}  // namespace gerbang::testing
