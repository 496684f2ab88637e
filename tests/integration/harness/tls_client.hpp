// A blocking TLS client (Asio SSL under Beast's parser) for talking HTTP/1.1 to the gateway.
//
// CONTRACT: blocking, one thread at a time; every call has a deadline (the socket is closed when a connect,
// handshake, send or read_response() times out; read_raw()/read_until() leave it open, see RawClient).
// request() and read_response() keep the connection for the next request (keep-alive). Bytes received but
// not yet returned stay buffered between calls.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness/http_types.hpp"

namespace gerbang::testing {

class TestPki;
class TlsSession;  // an OpenSSL session kept for resumption; opaque

enum class TlsVersion { unspecified, tls1_0, tls1_1, tls1_2, tls1_3 };

struct TlsClientOptions {
  std::string host = "127.0.0.1";  // where to connect
  std::string sni = "localhost";   // empty: no SNI extension
  // Name checked against the server certificate; empty means sni. Both empty: chain checked, name not.
  std::string verify_host{};
  bool verify = true;               // false: accept any certificate (tests about the gateway, not about us)
  std::string ca_file{};            // trust anchor; filled with the TestPki CA by the TestPki constructor
  std::string client_cert_file{};   // chain PEM; empty: no client certificate
  std::string client_key_file{};
  std::vector<std::string> alpn = {"http/1.1"};  // empty: no ALPN extension
  TlsVersion min_version = TlsVersion::unspecified;
  TlsVersion max_version = TlsVersion::unspecified;
  std::string cipher_list{};   // TLS <= 1.2 (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites{};  // TLS 1.3; empty: OpenSSL's default
  std::shared_ptr<const TlsSession> resume{};  // offer this session (from session()) in the handshake
  std::chrono::milliseconds connect_timeout{5000};  // TCP connect and handshake, each
};

class TlsClient {
 public:
  TlsClient(std::uint16_t port, TlsClientOptions options);
  // Verifies against the TestPki CA unless options.ca_file is set.
  TlsClient(const TestPki& pki, std::uint16_t port, TlsClientOptions options = {});
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // TCP connect plus TLS handshake. The failure message says why (including the certificate verify result).
  [[nodiscard]] ::testing::AssertionResult connect();

  // After a successful handshake:
  std::string protocol_version() const;  // "TLSv1.3"
  std::string cipher() const;            // OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384"
  std::string alpn() const;              // negotiated protocol, "" if none
  std::string peer_subject() const;      // RFC 2253, e.g. "CN=localhost,O=gerbang-test"
  std::vector<std::string> peer_san() const;  // "DNS:localhost", "IP:127.0.0.1", "URI:...", "email:..."
  bool session_reused() const;
  // The session to resume later, or null. With TLS 1.3 the ticket arrives after the handshake: call this
  // after at least one response has been read.
  std::shared_ptr<const TlsSession> session() const;

  // Sends format_http_request(method, target, headers, body, <sni or host>) and reads the response
  // (a HEAD's response is read without a body).
  HttpResponse request(std::string_view method, std::string_view target, const HeaderList& headers = {},
                       std::string_view body = {}, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The exact bytes request() would send.
  std::string format_request(std::string_view method, std::string_view target, const HeaderList& headers,
                             std::string_view body) const;

  [[nodiscard]] bool send_raw(std::string_view bytes, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::string read_raw(std::chrono::milliseconds timeout);
  std::string read_until(std::string_view needle, std::chrono::milliseconds timeout);
  HttpResponse read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  HttpResponse read_response(const ReadOptions& options);
  [[nodiscard]] ::testing::AssertionResult wait_for_close(std::chrono::milliseconds timeout);

  bool closed_by_peer() const;
  // close_notify, then wait (bounded) for the peer's, then close.
  void shutdown_tls(std::chrono::milliseconds timeout = std::chrono::seconds(2));
  void close();
  const std::string& last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::testing
