#include "harness/tls_client.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ssl/host_name_verification.hpp>

#include "harness/io_channel.hpp"
#include "harness/test_pki.hpp"

namespace gerbang::testing {

using namespace detail;

class TlsSession {
 public:
  explicit TlsSession(SSL_SESSION* session) : session_(session) {}
  ~TlsSession() { SSL_SESSION_free(session_); }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  SSL_SESSION* get() const { return session_; }

 private:
  SSL_SESSION* session_;
};

namespace {

int to_openssl(TlsVersion v) {
  switch (v) {
    case TlsVersion::tls1_0: return TLS1_VERSION;
    case TlsVersion::tls1_1: return TLS1_1_VERSION;
    case TlsVersion::tls1_2: return TLS1_2_VERSION;
    case TlsVersion::tls1_3: return TLS1_3_VERSION;
    case TlsVersion::unspecified: break;
  }
  return 0;
}

std::string asn1_text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

struct TlsClient::Impl {
  explicit Impl(std::uint16_t p, TlsClientOptions o) : port(p), options(std::move(o)) {
    configure();
    channel = std::make_unique<TlsChannel>(ioc, ctx);
  }

  void configure() {
    SSL_CTX* c = ctx.native_handle();
    beast::error_code ec;
    if (options.min_version != TlsVersion::unspecified) {
      SSL_CTX_set_min_proto_version(c, to_openssl(options.min_version));
    }
    if (options.max_version != TlsVersion::unspecified) {
      SSL_CTX_set_max_proto_version(c, to_openssl(options.max_version));
    }
    std::string ciphers = options.cipher_list;
    if (options.max_version == TlsVersion::tls1_0 || options.max_version == TlsVersion::tls1_1) {
      // Debian's OpenSSL config (SECLEVEL=2) would refuse to even offer TLS < 1.2; tests that probe the
      // gateway's refusal of old versions need the client to offer them.
      ciphers = (ciphers.empty() ? std::string("DEFAULT") : ciphers) + ":@SECLEVEL=0";
    }
    if (!ciphers.empty() && SSL_CTX_set_cipher_list(c, ciphers.c_str()) != 1) {
      config_error += "bad cipher_list '" + ciphers + "'; ";
    }
    if (!options.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, options.ciphersuites.c_str()) != 1) {
      config_error += "bad ciphersuites '" + options.ciphersuites + "'; ";
    }
    if (options.verify) {
      ctx.set_verify_mode(ssl::verify_peer, ec);
      if (options.ca_file.empty()) {
        config_error += "verify is on but no ca_file was given; ";
      } else if (ctx.load_verify_file(options.ca_file, ec); ec) {
        config_error += "loading CA " + options.ca_file + ": " + ec.message() + "; ";
      }
    } else {
      ctx.set_verify_mode(ssl::verify_none, ec);
    }
    if (!options.client_cert_file.empty()) {
      if (ctx.use_certificate_chain_file(options.client_cert_file, ec); ec) {
        config_error += "loading client cert " + options.client_cert_file + ": " + ec.message() + "; ";
      }
      if (ctx.use_private_key_file(options.client_key_file, ssl::context::pem, ec); ec) {
        config_error += "loading client key " + options.client_key_file + ": " + ec.message() + "; ";
      }
    }
    if (!options.alpn.empty()) {
      std::string wire = alpn_wire(options.alpn);
      // Unlike most of OpenSSL, this returns 0 on success.
      if (SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()),
                                  static_cast<unsigned>(wire.size())) != 0) {
        config_error += "bad ALPN list; ";
      }
    }
  }

  SSL* ssl() { return channel->stream().native_handle(); }

  std::unique_ptr<X509, X509Free> peer() {
    return std::unique_ptr<X509, X509Free>(SSL_get1_peer_certificate(ssl()));
  }

  std::uint16_t port;
  TlsClientOptions options;
  net::io_context ioc{1};
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<TlsChannel> channel;
  std::string config_error;
  std::string last_error;
  bool attempted = false;
  bool handshake_done = false;
};

TlsClient::TlsClient(std::uint16_t port, TlsClientOptions options)
    : impl_(std::make_unique<Impl>(port, std::move(options))) {}

namespace {
TlsClientOptions with_pki(const TestPki& pki, TlsClientOptions options) {
  if (options.ca_file.empty()) {
    options.ca_file = pki.ca_cert();
  }
  return options;
}
}  // namespace

TlsClient::TlsClient(const TestPki& pki, std::uint16_t port, TlsClientOptions options)
    : TlsClient(port, with_pki(pki, std::move(options))) {}

TlsClient::~TlsClient() { impl_->channel->close(); }

::testing::AssertionResult TlsClient::connect() {
  auto fail = [&](std::string why) {
    impl_->last_error = why;
    return ::testing::AssertionFailure() << why;
  };
  if (!impl_->config_error.empty()) {
    return fail("TlsClient options: " + impl_->config_error);
  }
  if (impl_->attempted) {
    return fail("TlsClient::connect() called twice; use one TlsClient per connection");
  }
  impl_->attempted = true;
  const auto& o = impl_->options;
  beast::error_code ec;
  auto address = net::ip::make_address(o.host, ec);
  if (ec) {
    return fail("bad address " + o.host);
  }
  ec = impl_->channel->connect(tcp::endpoint(address, impl_->port), deadline_after(o.connect_timeout));
  if (ec) {
    return fail("TCP connect to " + o.host + ":" + std::to_string(impl_->port) + ": " + ec.message());
  }
  SSL* ssl = impl_->ssl();
  if (!o.sni.empty()) {
    SSL_set_tlsext_host_name(ssl, o.sni.c_str());
  }
  if (o.verify) {
    std::string name = o.verify_host.empty() ? o.sni : o.verify_host;
    if (!name.empty()) {
      impl_->channel->stream().set_verify_callback(ssl::host_name_verification(name), ec);
    }
  }
  if (o.resume) {
    SSL_set_session(ssl, o.resume->get());
  }
  ec = impl_->channel->handshake(ssl::stream_base::client, deadline_after(o.connect_timeout));
  if (ec) {
    return fail("TLS handshake: " + describe_tls_error(ec, impl_->channel->stream()));
  }
  impl_->handshake_done = true;
  return ::testing::AssertionSuccess();
}

std::string TlsClient::protocol_version() const {
  return impl_->handshake_done ? SSL_get_version(impl_->ssl()) : "";
}

std::string TlsClient::cipher() const {
  const char* name = impl_->handshake_done ? SSL_get_cipher_name(impl_->ssl()) : nullptr;
  return name ? name : "";
}

std::string TlsClient::alpn() const {
  const unsigned char* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(impl_->ssl(), &data, &len);
  return data ? std::string(reinterpret_cast<const char*>(data), len) : std::string{};
}

std::string TlsClient::peer_subject() const {
  return impl_->handshake_done ? detail::peer_subject(impl_->channel->stream()) : std::string{};
}

std::vector<std::string> TlsClient::peer_san() const {
  std::vector<std::string> out;
  auto cert = impl_->peer();
  if (!cert) {
    return out;
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    switch (gn->type) {
      case GEN_DNS: out.push_back("DNS:" + asn1_text(gn->d.dNSName)); break;
      case GEN_URI: out.push_back("URI:" + asn1_text(gn->d.uniformResourceIdentifier)); break;
      case GEN_EMAIL: out.push_back("email:" + asn1_text(gn->d.rfc822Name)); break;
      case GEN_IPADD: {
        std::string raw = asn1_text(gn->d.iPAddress);
        char text[INET6_ADDRSTRLEN] = {};
        int family = raw.size() == 4 ? AF_INET : AF_INET6;
        if ((raw.size() == 4 || raw.size() == 16) && inet_ntop(family, raw.data(), text, sizeof text)) {
          out.push_back(std::string("IP:") + text);
        }
        break;
      }
      default: break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

bool TlsClient::session_reused() const { return impl_->handshake_done && SSL_session_reused(impl_->ssl()) == 1; }

std::shared_ptr<const TlsSession> TlsClient::session() const {
  if (!impl_->handshake_done) {
    return nullptr;
  }
  SSL_SESSION* s = SSL_get1_session(impl_->ssl());
  if (s == nullptr) {
    return nullptr;
  }
  // A copy: closing this connection without close_notify makes OpenSSL mark *its* session not resumable
  // (ssl_clear_bad_session), which would otherwise spoil the handle we give out.
  SSL_SESSION* copy = SSL_SESSION_is_resumable(s) == 1 ? SSL_SESSION_dup(s) : nullptr;
  SSL_SESSION_free(s);
  if (copy == nullptr) {
    return nullptr;
  }
  return std::make_shared<const TlsSession>(copy);
}

std::string TlsClient::format_request(std::string_view method, std::string_view target, const HeaderList& headers,
                                      std::string_view body) const {
  const auto& o = impl_->options;
  return format_http_request(method, target, headers, body, o.sni.empty() ? o.host : o.sni);
}

HttpResponse TlsClient::request(std::string_view method, std::string_view target, const HeaderList& headers,
                                std::string_view body, std::chrono::milliseconds timeout) {
  if (!send_raw(format_request(method, target, headers, body), timeout)) {
    HttpResponse r;
    r.error = "send failed: " + impl_->last_error;
    return r;
  }
  ReadOptions options;
  options.timeout = timeout;
  options.head_response = iequals(method, "HEAD");
  return read_response(options);
}

bool TlsClient::send_raw(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (!impl_->handshake_done) {
    impl_->last_error = "not connected";
    return false;
  }
  auto ec = impl_->channel->write(bytes, deadline_after(timeout));
  if (ec) {
    impl_->last_error = ec.message();
    return false;
  }
  return true;
}

std::string TlsClient::read_raw(std::chrono::milliseconds timeout) {
  return impl_->channel->read_raw(deadline_after(timeout));
}

std::string TlsClient::read_until(std::string_view needle, std::chrono::milliseconds timeout) {
  bool found = false;
  return impl_->channel->read_until(needle, deadline_after(timeout), found);
}

HttpResponse TlsClient::read_response(std::chrono::milliseconds timeout) {
  ReadOptions options;
  options.timeout = timeout;
  return read_response(options);
}

HttpResponse TlsClient::read_response(const ReadOptions& options) {
  auto r = impl_->channel->read_response(options);
  if (!r.complete) {
    impl_->last_error = r.error;
  }
  return r;
}

::testing::AssertionResult TlsClient::wait_for_close(std::chrono::milliseconds timeout) {
  if (impl_->channel->wait_for_close(deadline_after(timeout))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "peer did not close within " << timeout.count() << " ms";
}

bool TlsClient::closed_by_peer() const { return impl_->channel->peer_closed(); }

void TlsClient::shutdown_tls(std::chrono::milliseconds timeout) {
  if (impl_->handshake_done && impl_->channel->is_open()) {
    impl_->channel->tls_shutdown(deadline_after(timeout));
  }
  impl_->channel->close();
}

void TlsClient::close() { impl_->channel->close(); }

const std::string& TlsClient::last_error() const { return impl_->last_error; }

}  // namespace gerbang::testing
