// TLS contexts: one ServerTls per listener (SNI → certificate set, hardened defaults, rotating ticket keys,
// optional client-certificate verification) and one UpstreamTls per upstream that speaks TLS.
//
// THREAD SAFETY: contexts are built once per configuration generation, then only used to create SSL objects
// (OpenSSL's SSL_CTX is safe for that from many threads). Ticket-key rotation takes a mutex that only the
// handshake path touches, never the request path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "gateway/config/config.hpp"

typedef struct ssl_st SSL;

namespace gerbang::gateway {

class OcspStapler;

struct PeerIdentity {
  std::string subject;             // RFC 2253 one-line DN
  std::string fingerprint_sha256;  // lower-case hex of SHA-256 over the DER certificate
  std::vector<std::string> dns, uris, emails;  // subjectAltName entries
};

// What a connection keeps of its handshake for its whole life (kept small: 10,000 idle connections hold it).
struct TlsSummary {
  const char* version = "";  // "TLSv1.3" (static string from OpenSSL)
  const char* cipher = "";
  std::string sni;
  bool resumed = false;
};

struct TlsInfo : TlsSummary {
  std::optional<PeerIdentity> peer;  // set only when a client certificate was presented and verified
};

TlsInfo describe_tls(SSL* ssl);

class ServerTls {
 public:
  // Loads every certificate and key (refusing keys accessible by group/other), applies the hardened defaults.
  // On failure returns null and appends human-readable errors naming the listener and file.
  // With listener.tls.ocsp_stapling, each certificate is registered with `stapler` (null: only checked, as
  // for --check-config).
  static std::unique_ptr<ServerTls> create(const config::ListenerConfig& listener, std::vector<std::string>& errors,
                                           std::shared_ptr<OcspStapler> stapler = nullptr);
  ~ServerTls();

  boost::asio::ssl::context& context() noexcept;  // the default (first) certificate set; SNI switches from it
  void rotate_ticket_keys();                      // new encryption key; the previous one still decrypts

 private:
  struct Impl;
  explicit ServerTls(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class UpstreamTls {
 public:
  static std::unique_ptr<UpstreamTls> create(const config::UpstreamConfig& upstream, std::vector<std::string>& errors);
  ~UpstreamTls();
  boost::asio::ssl::context& context() noexcept;
  // Sets SNI and the name (or IP) the server certificate must match on a new SSL object.
  bool prepare(SSL* ssl, const std::string& target_host) const;

 private:
  struct Impl;
  explicit UpstreamTls(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::gateway
