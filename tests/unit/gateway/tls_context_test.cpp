#include "gateway/tls_context.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "certs/dev_ca.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::gateway {
namespace {

// ---- fixtures: one throwaway PKI for the whole suite -------------------------------------------------------

struct Pair {
  std::string cert;
  std::string key;
  std::string fingerprint;
};

struct Pki {
  std::string dir;
  std::string ca_file;
  Pair a_ecdsa;   // a.test, *.wild.test
  Pair a_rsa;     // a.test, *.wild.test (RSA)
  Pair b_ecdsa;   // b.test
  Pair client;    // CN=client-1, spiffe URI
  Pair other_ca_client;  // issued by an unrelated CA
  std::string loose_key;  // a_ecdsa's key with mode 0644
  std::string error;
};

std::string join_errors(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e + "\n";
  }
  return out;
}

class TlsContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(crypto::init_sodium());
    pki_ = new Pki;
    Pki& p = *pki_;
    char tmpl[] = "/tmp/gerbang-tls-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    p.dir = tmpl;
    auto ca = certs::DevCa::create("Gerbang Test CA", certs::KeyType::ecdsa_p256, p.error);
    ASSERT_TRUE(ca) << p.error;
    auto other_ca = certs::DevCa::create("Unrelated CA", certs::KeyType::ecdsa_p256, p.error);
    ASSERT_TRUE(other_ca) << p.error;
    p.ca_file = p.dir + "/ca.pem";
    ASSERT_TRUE(certs::write_file_atomic(p.ca_file, ca->cert_pem(), 0644, p.error)) << p.error;

    auto issue = [&](certs::DevCa& issuer, bool server, const std::string& stem, certs::IssueOptions o, Pair& out) {
      auto issued = server ? issuer.issue_server(o, p.error) : issuer.issue_client(o, p.error);
      ASSERT_TRUE(issued) << p.error;
      out.cert = p.dir + "/" + stem + ".pem";
      out.key = p.dir + "/" + stem + ".key";
      out.fingerprint = issued->sha256_fingerprint;
      ASSERT_TRUE(certs::write_file_atomic(out.cert, issued->chain_pem, 0644, p.error)) << p.error;
      ASSERT_TRUE(certs::write_file_atomic(out.key, issued->key_pem, 0600, p.error)) << p.error;
    };
    certs::IssueOptions a;
    a.common_name = "a.test";
    a.dns_names = {"a.test", "*.wild.test"};
    issue(*ca, true, "a-ecdsa", a, p.a_ecdsa);
    a.key_type = certs::KeyType::rsa_2048;
    issue(*ca, true, "a-rsa", a, p.a_rsa);
    certs::IssueOptions b;
    b.common_name = "b.test";
    b.dns_names = {"b.test"};
    issue(*ca, true, "b-ecdsa", b, p.b_ecdsa);
    certs::IssueOptions c;
    c.common_name = "client-1";
    c.uris = {"spiffe://kota.go.id/client-1"};
    c.emails = {"ops@kota.go.id"};
    issue(*ca, false, "client", c, p.client);
    c.common_name = "intruder";
    issue(*other_ca, false, "intruder", c, p.other_ca_client);

    // Same key bytes, world-readable.
    p.loose_key = p.dir + "/loose.key";
    std::string key_pem;
    {
      FILE* f = std::fopen(p.a_ecdsa.key.c_str(), "rb");
      ASSERT_NE(f, nullptr);
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        key_pem.append(buf, n);
      }
      std::fclose(f);
    }
    ASSERT_TRUE(certs::write_file_atomic(p.loose_key, key_pem, 0644, p.error)) << p.error;
  }

  static void TearDownTestSuite() {
    if (pki_ != nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(pki_->dir, ec);
      delete pki_;
      pki_ = nullptr;
    }
  }

  void SetUp() override {
    ASSERT_NE(pki_, nullptr);
    ASSERT_FALSE(pki_->dir.empty()) << "PKI setup failed: " << pki_->error;
    ERR_clear_error();
  }

  static config::ListenerConfig listener(std::vector<Pair> pairs) {
    config::ListenerConfig l;
    l.name = "web";
    for (const auto& p : pairs) {
      l.tls.certificates.push_back({p.cert, p.key, {}});
    }
    return l;
  }

  static std::unique_ptr<ServerTls> server(const config::ListenerConfig& l) {
    std::vector<std::string> errors;
    auto s = ServerTls::create(l, errors);
    EXPECT_TRUE(s) << join_errors(errors);
    EXPECT_TRUE(errors.empty()) << join_errors(errors);
    return s;
  }

  static Pki* pki_;
};

Pki* TlsContextTest::pki_ = nullptr;

// ---- in-memory handshakes over a BIO pair ------------------------------------------------------------------

struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

struct Handshake {
  SslPtr server;
  SslPtr client;
  bool ok = false;
  int server_error = SSL_ERROR_NONE;  // SSL_get_error of the last failed server step
  int client_error = SSL_ERROR_NONE;
};

// Client context trusting the test CA (verification on), optionally presenting a certificate.
CtxPtr client_ctx(const std::string& ca_file, const Pair* cert = nullptr) {
  CtxPtr c(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(c.get(), SSL_VERIFY_PEER, nullptr);
  EXPECT_EQ(SSL_CTX_load_verify_locations(c.get(), ca_file.c_str(), nullptr), 1);
  if (cert != nullptr) {
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(c.get(), cert->cert.c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(c.get(), cert->key.c_str(), SSL_FILETYPE_PEM), 1);
  }
  return c;
}

// Runs both ends until each has finished the handshake or one fails. `prepare` configures the client SSL.
template <typename Prepare>
Handshake handshake(SSL_CTX* server_ctx, SSL_CTX* cctx, Prepare prepare) {
  Handshake h;
  h.server.reset(SSL_new(server_ctx));
  h.client.reset(SSL_new(cctx));
  BIO* server_bio = nullptr;
  BIO* client_bio = nullptr;
  if (BIO_new_bio_pair(&server_bio, 0, &client_bio, 0) != 1) {
    ADD_FAILURE() << "BIO_new_bio_pair";
    return h;
  }
  SSL_set_bio(h.server.get(), server_bio, server_bio);
  SSL_set_bio(h.client.get(), client_bio, client_bio);
  SSL_set_accept_state(h.server.get());
  SSL_set_connect_state(h.client.get());
  prepare(h.client.get());
  bool server_done = false;
  bool client_done = false;
  for (int round = 0; round < 64 && !(server_done && client_done); ++round) {
    if (!client_done) {
      const int rc = SSL_do_handshake(h.client.get());
      if (rc == 1) {
        client_done = true;
      } else {
        const int e = SSL_get_error(h.client.get(), rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          h.client_error = e;
          break;
        }
      }
    }
    if (!server_done) {
      const int rc = SSL_do_handshake(h.server.get());
      if (rc == 1) {
        server_done = true;
      } else {
        const int e = SSL_get_error(h.server.get(), rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          h.server_error = e;
          break;
        }
      }
    }
  }
  // In TLS 1.3 the server verifies a client certificate after the client considers itself done: let the
  // client read the server's verdict (an alert, or the session ticket) so a rejection shows on both ends.
  if (server_done && client_done) {
    char byte;
    const int rc = SSL_read(h.client.get(), &byte, 1);
    const int e = SSL_get_error(h.client.get(), rc);
    if (e != SSL_ERROR_WANT_READ) {
      h.client_error = e;
    }
  }
  ERR_clear_error();
  h.ok = server_done && client_done && h.client_error == SSL_ERROR_NONE && h.server_error == SSL_ERROR_NONE;
  return h;
}

Handshake handshake(SSL_CTX* server_ctx, SSL_CTX* cctx, const char* sni = nullptr) {
  return handshake(server_ctx, cctx, [&](SSL* s) {
    if (sni != nullptr) {
      SSL_set_tlsext_host_name(s, sni);
      SSL_set1_host(s, sni);
    }
  });
}

std::string peer_fingerprint(SSL* s) {
  X509* cert = SSL_get0_peer_certificate(s);
  if (cert == nullptr) {
    return "<none>";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

// ---- ServerTls::create -------------------------------------------------------------------------------------

TEST_F(TlsContextTest, ServerWithEcdsaAndRsaCertificates) {
  auto s = server(listener({pki_->a_ecdsa, pki_->a_rsa, pki_->b_ecdsa}));
  ASSERT_TRUE(s);
  SSL_CTX* c = s->context().native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(c), TLS1_3_VERSION);
  const auto options = SSL_CTX_get_options(c);
  EXPECT_NE(options & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(options & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(options & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  EXPECT_EQ(SSL_CTX_get_verify_mode(c), SSL_VERIFY_NONE);
  s->rotate_ticket_keys();  // must not disturb a later handshake
  auto cctx = client_ctx(pki_->ca_file);
  EXPECT_TRUE(handshake(c, cctx.get(), "a.test").ok);
}

TEST_F(TlsContextTest, MinVersionOneThree) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.min_version = config::TlsVersion::tls1_3;
  auto s = server(l);
  ASSERT_TRUE(s);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(s->context().native_handle()), TLS1_3_VERSION);
  auto cctx = client_ctx(pki_->ca_file);
  SSL_CTX_set_max_proto_version(cctx.get(), TLS1_2_VERSION);
  EXPECT_FALSE(handshake(s->context().native_handle(), cctx.get(), "a.test").ok);
}

TEST_F(TlsContextTest, KeyReadableByOthersIsRefusedNamingTheFile) {
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({{pki_->a_ecdsa.cert, pki_->loose_key, ""}}), errors);
  EXPECT_FALSE(s);
  ASSERT_EQ(errors.size(), 1u) << join_errors(errors);
  EXPECT_NE(errors[0].find(pki_->loose_key), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("listener web"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("644"), std::string::npos) << errors[0];
}

TEST_F(TlsContextTest, MissingCertificateIsRefusedNamingTheFile) {
  const std::string missing = pki_->dir + "/does-not-exist.pem";
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({{missing, pki_->a_ecdsa.key, ""}}), errors);
  EXPECT_FALSE(s);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find(missing), std::string::npos) << errors[0];
}

TEST_F(TlsContextTest, MissingKeyIsRefusedNamingTheFile) {
  const std::string missing = pki_->dir + "/does-not-exist.key";
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({{pki_->a_ecdsa.cert, missing, ""}}), errors);
  EXPECT_FALSE(s);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find(missing), std::string::npos) << errors[0];
}

TEST_F(TlsContextTest, KeyNotMatchingCertificateIsRefused) {
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({{pki_->a_ecdsa.cert, pki_->b_ecdsa.key, ""}}), errors);
  EXPECT_FALSE(s);
  ASSERT_FALSE(errors.empty());
  const std::string all = join_errors(errors);
  EXPECT_NE(all.find(pki_->b_ecdsa.key), std::string::npos) << all;
  EXPECT_NE(all.find("listener web"), std::string::npos) << all;
}

TEST_F(TlsContextTest, OneBadCertificateFailsTheWholeListener) {
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({pki_->a_ecdsa, {pki_->b_ecdsa.cert, pki_->loose_key, ""}}), errors);
  EXPECT_FALSE(s);
  EXPECT_EQ(errors.size(), 1u) << join_errors(errors);
}

TEST_F(TlsContextTest, NoCertificateIsRefused) {
  std::vector<std::string> errors;
  auto s = ServerTls::create(listener({}), errors);
  EXPECT_FALSE(s);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("no usable certificate"), std::string::npos) << errors[0];
}

TEST_F(TlsContextTest, ErrorsAreAppended) {
  std::vector<std::string> errors{"earlier"};
  auto s = ServerTls::create(listener({{pki_->a_ecdsa.cert, pki_->loose_key, ""}}), errors);
  EXPECT_FALSE(s);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], "earlier");
}

TEST_F(TlsContextTest, ClientAuthWithoutLoadableCaIsRefused) {
  for (auto mode : {config::ClientAuth::required, config::ClientAuth::optional}) {
    auto l = listener({pki_->a_ecdsa});
    l.tls.client_auth = mode;
    l.tls.client_ca_file = pki_->dir + "/no-such-ca.pem";
    std::vector<std::string> errors;
    EXPECT_FALSE(ServerTls::create(l, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find(l.tls.client_ca_file), std::string::npos) << errors[0];

    l.tls.client_ca_file = "";
    errors.clear();
    EXPECT_FALSE(ServerTls::create(l, errors)) << "empty client_ca_file";
  }
}

// ---- real handshakes ---------------------------------------------------------------------------------------

TEST_F(TlsContextTest, HandshakeNegotiatesTls13AndHttp11Alpn) {
  auto s = server(listener({pki_->a_ecdsa, pki_->b_ecdsa}));
  ASSERT_TRUE(s);
  auto cctx = client_ctx(pki_->ca_file);
  auto h = handshake(s->context().native_handle(), cctx.get(), [](SSL* c) {
    static const unsigned char kProtos[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(c, kProtos, sizeof kProtos);
    SSL_set_tlsext_host_name(c, "a.test");
    SSL_set1_host(c, "a.test");
  });
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(SSL_version(h.client.get()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_get_verify_result(h.client.get()), X509_V_OK);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(h.client.get(), &alpn, &alpn_len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), alpn_len), "http/1.1");

  const TlsInfo info = describe_tls(h.server.get());
  EXPECT_STREQ(info.version, "TLSv1.3");
  EXPECT_STRNE(info.cipher, "");
  EXPECT_EQ(info.sni, "a.test");
  EXPECT_FALSE(info.resumed);
  EXPECT_FALSE(info.peer.has_value());
}

TEST_F(TlsContextTest, AlpnWithoutHttp11ContinuesWithoutAlpn) {
  auto s = server(listener({pki_->a_ecdsa}));
  ASSERT_TRUE(s);
  auto cctx = client_ctx(pki_->ca_file);
  auto h = handshake(s->context().native_handle(), cctx.get(), [](SSL* c) {
    static const unsigned char kProtos[] = {2, 'h', '2'};
    SSL_set_alpn_protos(c, kProtos, sizeof kProtos);
  });
  ASSERT_TRUE(h.ok);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(h.client.get(), &alpn, &alpn_len);
  EXPECT_EQ(alpn_len, 0u);
}

TEST_F(TlsContextTest, Tls12HandshakeWorks) {
  auto s = server(listener({pki_->a_ecdsa}));
  ASSERT_TRUE(s);
  auto cctx = client_ctx(pki_->ca_file);
  SSL_CTX_set_max_proto_version(cctx.get(), TLS1_2_VERSION);
  auto h = handshake(s->context().native_handle(), cctx.get(), "a.test");
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(SSL_version(h.client.get()), TLS1_2_VERSION);
  EXPECT_STREQ(describe_tls(h.server.get()).version, "TLSv1.2");
}

TEST_F(TlsContextTest, SniChoosesTheCertificateForThatName) {
  auto s = server(listener({pki_->a_ecdsa, pki_->b_ecdsa}));
  ASSERT_TRUE(s);
  auto cctx = client_ctx(pki_->ca_file);
  SSL_CTX* sc = s->context().native_handle();

  auto a = handshake(sc, cctx.get(), "a.test");
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(peer_fingerprint(a.client.get()), pki_->a_ecdsa.fingerprint);

  auto b = handshake(sc, cctx.get(), "b.test");
  ASSERT_TRUE(b.ok) << "b.test must be served b's certificate (verified against the name)";
  EXPECT_EQ(peer_fingerprint(b.client.get()), pki_->b_ecdsa.fingerprint);
  EXPECT_EQ(describe_tls(b.server.get()).sni, "b.test");

  auto upper = handshake(sc, cctx.get(), "B.TEST");
  ASSERT_TRUE(upper.ok);
  EXPECT_EQ(peer_fingerprint(upper.client.get()), pki_->b_ecdsa.fingerprint);

  auto wild = handshake(sc, cctx.get(), "x.wild.test");
  ASSERT_TRUE(wild.ok);
  EXPECT_EQ(peer_fingerprint(wild.client.get()), pki_->a_ecdsa.fingerprint);

  // Unknown or absent names get the first (default) certificate.
  auto unknown = handshake(sc, cctx.get(), [](SSL* c) { SSL_set_tlsext_host_name(c, "unknown.test"); });
  EXPECT_EQ(peer_fingerprint(unknown.client.get()), pki_->a_ecdsa.fingerprint);
  auto none = handshake(sc, cctx.get(), [](SSL*) {});
  EXPECT_EQ(peer_fingerprint(none.client.get()), pki_->a_ecdsa.fingerprint);
}

TEST_F(TlsContextTest, SameNamesShareAContextAndTheClientPicksTheKeyType) {
  auto s = server(listener({pki_->a_ecdsa, pki_->a_rsa}));
  ASSERT_TRUE(s);
  SSL_CTX* sc = s->context().native_handle();
  auto ecdsa_client = client_ctx(pki_->ca_file);
  ASSERT_EQ(SSL_CTX_set1_sigalgs_list(ecdsa_client.get(), "ECDSA+SHA256"), 1);
  auto e = handshake(sc, ecdsa_client.get(), "a.test");
  ASSERT_TRUE(e.ok);
  EXPECT_EQ(peer_fingerprint(e.client.get()), pki_->a_ecdsa.fingerprint);

  auto rsa_client = client_ctx(pki_->ca_file);
  ASSERT_EQ(SSL_CTX_set1_sigalgs_list(rsa_client.get(), "rsa_pss_rsae_sha256:RSA+SHA256"), 1);
  auto r = handshake(sc, rsa_client.get(), "a.test");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(peer_fingerprint(r.client.get()), pki_->a_rsa.fingerprint);
}

TEST_F(TlsContextTest, Tls11ClientIsRefused) {
  auto s = server(listener({pki_->a_ecdsa}));
  ASSERT_TRUE(s);
  CtxPtr cctx(SSL_CTX_new(TLS_client_method()));
  // Let the client offer TLS 1.1 at all (OpenSSL 3 forbids it at security level 1), so it is the server
  // that refuses.
  SSL_CTX_set_security_level(cctx.get(), 0);
  ASSERT_EQ(SSL_CTX_set_cipher_list(cctx.get(), "DEFAULT:@SECLEVEL=0"), 1);
  SSL_CTX_set_min_proto_version(cctx.get(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(cctx.get(), TLS1_1_VERSION);
  SSL_CTX_set_verify(cctx.get(), SSL_VERIFY_NONE, nullptr);
  auto h = handshake(s->context().native_handle(), cctx.get(), "a.test");
  EXPECT_FALSE(h.ok);
  EXPECT_EQ(h.server_error, SSL_ERROR_SSL) << "the server, having seen the ClientHello, must reject it";
}

TEST_F(TlsContextTest, OptionalClientAuthReportsThePeer) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.client_auth = config::ClientAuth::optional;
  l.tls.client_ca_file = pki_->ca_file;
  auto s = server(l);
  ASSERT_TRUE(s);
  SSL_CTX* sc = s->context().native_handle();
  EXPECT_EQ(SSL_CTX_get_verify_mode(sc), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE);

  auto with_cert = client_ctx(pki_->ca_file, &pki_->client);
  auto h = handshake(sc, with_cert.get(), "a.test");
  ASSERT_TRUE(h.ok);
  const TlsInfo info = describe_tls(h.server.get());
  ASSERT_TRUE(info.peer.has_value());
  EXPECT_EQ(info.peer->fingerprint_sha256, pki_->client.fingerprint);
  EXPECT_NE(info.peer->subject.find("CN=client-1"), std::string::npos) << info.peer->subject;
  EXPECT_EQ(info.peer->uris, std::vector<std::string>{"spiffe://kota.go.id/client-1"});
  EXPECT_EQ(info.peer->emails, std::vector<std::string>{"ops@kota.go.id"});

  auto without_cert = client_ctx(pki_->ca_file);
  auto anon = handshake(sc, without_cert.get(), "a.test");
  ASSERT_TRUE(anon.ok) << "optional: no certificate is fine";
  EXPECT_FALSE(describe_tls(anon.server.get()).peer.has_value());

  auto intruder = client_ctx(pki_->ca_file, &pki_->other_ca_client);
  auto bad = handshake(sc, intruder.get(), "a.test");
  EXPECT_FALSE(bad.ok) << "a certificate from another CA is refused, not ignored";
}

TEST_F(TlsContextTest, RequiredClientAuthRefusesAnonymousClients) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.client_auth = config::ClientAuth::required;
  l.tls.client_ca_file = pki_->ca_file;
  auto s = server(l);
  ASSERT_TRUE(s);
  SSL_CTX* sc = s->context().native_handle();
  auto without_cert = client_ctx(pki_->ca_file);
  EXPECT_FALSE(handshake(sc, without_cert.get(), "a.test").ok);
  auto with_cert = client_ctx(pki_->ca_file, &pki_->client);
  auto h = handshake(sc, with_cert.get(), "a.test");
  ASSERT_TRUE(h.ok);
  ASSERT_TRUE(describe_tls(h.server.get()).peer.has_value());
}

TEST_F(TlsContextTest, ClientAuthAppliesAfterSniSwitch) {
  // The SNI callback moves the connection to another SSL_CTX; client verification must still apply there.
  auto l = listener({pki_->a_ecdsa, pki_->b_ecdsa});
  l.tls.client_auth = config::ClientAuth::required;
  l.tls.client_ca_file = pki_->ca_file;
  auto s = server(l);
  ASSERT_TRUE(s);
  auto without_cert = client_ctx(pki_->ca_file);
  EXPECT_FALSE(handshake(s->context().native_handle(), without_cert.get(), "b.test").ok);
  auto with_cert = client_ctx(pki_->ca_file, &pki_->client);
  auto h = handshake(s->context().native_handle(), with_cert.get(), "b.test");
  ASSERT_TRUE(h.ok);
  auto info = describe_tls(h.server.get());
  ASSERT_TRUE(info.peer.has_value());
  EXPECT_EQ(info.peer->fingerprint_sha256, pki_->client.fingerprint);
}

struct SessionDeleter {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionDeleter>;

// Whether a second handshake offering the first one's session resumes, after `rotations` key rotations.
bool resumes_after(const config::ListenerConfig& l, const std::string& ca_file, int rotations) {
  std::vector<std::string> errors;
  auto s = ServerTls::create(l, errors);
  EXPECT_TRUE(s) << join_errors(errors);
  if (!s) {
    return false;
  }
  auto cctx = client_ctx(ca_file);
  auto first = handshake(s->context().native_handle(), cctx.get(), "a.test");
  EXPECT_TRUE(first.ok);
  EXPECT_FALSE(describe_tls(first.server.get()).resumed);
  SessionPtr session(SSL_get1_session(first.client.get()));
  if (!session || SSL_SESSION_is_resumable(session.get()) != 1) {
    return false;  // nothing to offer: the server issued no ticket
  }
  for (int i = 0; i < rotations; ++i) {
    s->rotate_ticket_keys();
  }
  auto second = handshake(s->context().native_handle(), cctx.get(), [&](SSL* c) {
    SSL_set_tlsext_host_name(c, "a.test");
    SSL_set_session(c, session.get());
  });
  EXPECT_TRUE(second.ok);
  const bool resumed = describe_tls(second.server.get()).resumed;
  EXPECT_EQ(resumed, SSL_session_reused(second.client.get()) == 1);
  return resumed;
}

TEST_F(TlsContextTest, TicketsResumeAcrossOneKeyRotationButNotTwo) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.session_cache = false;  // tickets alone
  EXPECT_TRUE(resumes_after(l, pki_->ca_file, 0));
  EXPECT_TRUE(resumes_after(l, pki_->ca_file, 1)) << "the previous key still decrypts";
  EXPECT_FALSE(resumes_after(l, pki_->ca_file, 2)) << "a ticket two rotations old is refused";
}

TEST_F(TlsContextTest, SessionCacheResumesWithoutTickets) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.session_tickets = false;
  EXPECT_NE(SSL_CTX_get_options(server(l)->context().native_handle()) & SSL_OP_NO_TICKET, 0u);
  EXPECT_TRUE(resumes_after(l, pki_->ca_file, 0));
  l.tls.session_cache = false;
  EXPECT_FALSE(resumes_after(l, pki_->ca_file, 0)) << "neither tickets nor a cache: every handshake is full";
}

// ---- UpstreamTls -------------------------------------------------------------------------------------------

config::UpstreamConfig upstream_config(const std::string& ca_file) {
  config::UpstreamConfig u;
  u.name = "backend";
  u.tls.enabled = true;
  u.tls.ca_file = ca_file;
  return u;
}

TEST_F(TlsContextTest, UpstreamContextHasHardenedDefaults) {
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(upstream_config(pki_->ca_file), errors);
  ASSERT_TRUE(u) << join_errors(errors);
  SSL_CTX* c = u->context().native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(c) & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(SSL_CTX_get_options(c) & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_EQ(SSL_CTX_get_verify_mode(c), SSL_VERIFY_PEER);
}

TEST_F(TlsContextTest, UpstreamVerifiesTheServerName) {
  auto s = server(listener({pki_->a_ecdsa, pki_->b_ecdsa}));
  ASSERT_TRUE(s);
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(upstream_config(pki_->ca_file), errors);
  ASSERT_TRUE(u) << join_errors(errors);
  SSL_CTX* sc = s->context().native_handle();

  auto good = handshake(sc, u->context().native_handle(), [&](SSL* c) { ASSERT_TRUE(u->prepare(c, "b.test")); });
  ASSERT_TRUE(good.ok);
  EXPECT_EQ(describe_tls(good.server.get()).sni, "b.test");
  EXPECT_EQ(peer_fingerprint(good.client.get()), pki_->b_ecdsa.fingerprint);

  // "c.test" is not on any certificate: the default (a.test) is served and must not verify.
  auto wrong = handshake(sc, u->context().native_handle(), [&](SSL* c) { ASSERT_TRUE(u->prepare(c, "c.test")); });
  EXPECT_FALSE(wrong.ok);
  EXPECT_NE(SSL_get_verify_result(wrong.client.get()), X509_V_OK);
}

TEST_F(TlsContextTest, UpstreamConfiguredServerNameOverridesTheTarget) {
  auto s = server(listener({pki_->a_ecdsa, pki_->b_ecdsa}));
  ASSERT_TRUE(s);
  auto cfg = upstream_config(pki_->ca_file);
  cfg.tls.server_name = "b.test";
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(cfg, errors);
  ASSERT_TRUE(u) << join_errors(errors);
  auto h = handshake(s->context().native_handle(), u->context().native_handle(),
                     [&](SSL* c) { ASSERT_TRUE(u->prepare(c, "10.1.2.3")); });
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(describe_tls(h.server.get()).sni, "b.test");
}

TEST_F(TlsContextTest, UpstreamIpTargetSendsNoSni) {
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(upstream_config(pki_->ca_file), errors);
  ASSERT_TRUE(u) << join_errors(errors);
  SslPtr ssl(SSL_new(u->context().native_handle()));
  ASSERT_TRUE(u->prepare(ssl.get(), "127.0.0.1"));
  EXPECT_EQ(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name), nullptr);
  SslPtr ssl6(SSL_new(u->context().native_handle()));
  ASSERT_TRUE(u->prepare(ssl6.get(), "::1"));
  EXPECT_EQ(SSL_get_servername(ssl6.get(), TLSEXT_NAMETYPE_host_name), nullptr);
  SslPtr named(SSL_new(u->context().native_handle()));
  ASSERT_TRUE(u->prepare(named.get(), "api.internal"));
  EXPECT_STREQ(SSL_get_servername(named.get(), TLSEXT_NAMETYPE_host_name), "api.internal");
}

TEST_F(TlsContextTest, UpstreamFailuresNameTheFile) {
  {
    auto cfg = upstream_config(pki_->dir + "/missing-ca.pem");
    std::vector<std::string> errors;
    EXPECT_FALSE(UpstreamTls::create(cfg, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find(cfg.tls.ca_file), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("upstream backend"), std::string::npos) << errors[0];
  }
  {
    auto cfg = upstream_config(pki_->ca_file);
    cfg.tls.cert_file = pki_->client.cert;
    cfg.tls.key_file = pki_->loose_key;
    std::vector<std::string> errors;
    EXPECT_FALSE(UpstreamTls::create(cfg, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find(pki_->loose_key), std::string::npos) << errors[0];
  }
  {
    auto cfg = upstream_config(pki_->ca_file);
    cfg.tls.cert_file = pki_->client.cert;
    cfg.tls.key_file = pki_->b_ecdsa.key;  // not the client certificate's key
    std::vector<std::string> errors;
    EXPECT_FALSE(UpstreamTls::create(cfg, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find(pki_->client.cert), std::string::npos) << errors[0];
  }
}

TEST_F(TlsContextTest, UpstreamPresentsItsClientCertificate) {
  auto l = listener({pki_->a_ecdsa});
  l.tls.client_auth = config::ClientAuth::required;
  l.tls.client_ca_file = pki_->ca_file;
  auto s = server(l);
  ASSERT_TRUE(s);
  auto cfg = upstream_config(pki_->ca_file);
  cfg.tls.cert_file = pki_->client.cert;
  cfg.tls.key_file = pki_->client.key;
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(cfg, errors);
  ASSERT_TRUE(u) << join_errors(errors);
  auto h = handshake(s->context().native_handle(), u->context().native_handle(),
                     [&](SSL* c) { ASSERT_TRUE(u->prepare(c, "a.test")); });
  ASSERT_TRUE(h.ok);
  auto info = describe_tls(h.server.get());
  ASSERT_TRUE(info.peer.has_value());
  EXPECT_EQ(info.peer->fingerprint_sha256, pki_->client.fingerprint);
}

TEST_F(TlsContextTest, UpstreamWithoutVerificationAcceptsAnyCertificate) {
  auto s = server(listener({pki_->a_ecdsa}));
  ASSERT_TRUE(s);
  auto cfg = upstream_config("");
  cfg.tls.verify = false;
  std::vector<std::string> errors;
  auto u = UpstreamTls::create(cfg, errors);
  ASSERT_TRUE(u) << join_errors(errors);
  EXPECT_EQ(SSL_CTX_get_verify_mode(u->context().native_handle()), SSL_VERIFY_NONE);
  auto h = handshake(s->context().native_handle(), u->context().native_handle(),
                     [&](SSL* c) { ASSERT_TRUE(u->prepare(c, "wrong.name")); });
  EXPECT_TRUE(h.ok);
}

}  // namespace
}  // namespace gerbang::gateway
