// Certificates for integration tests, issued by certs::DevCa into a private temp dir.
//
// CONTRACT: the constructor makes the CA, an ECDSA server certificate for localhost/127.0.0.1/::1 and a good
// client certificate; the rest (RSA server, expired and foreign clients) is issued on first use, because
// RSA key generation is slow in Debug builds. Failures throw std::runtime_error with DevCa's message.
// Keys are written 0600, certificates 0644. Returned references live as long as the TestPki. All methods
// are thread-safe (one mutex; DevCa itself is single-threaded).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "certs/dev_ca.hpp"

namespace gerbang::testing {

class TempDir;

struct CertFiles {
  std::string cert;   // leaf certificate (PEM file)
  std::string chain;  // leaf + issuing CA (PEM file): what a server should present
  std::string key;    // private key (PEM file, mode 0600)
  std::string serial_hex;
  std::string sha256_fingerprint;
};

class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const;
  const std::string& ca_cert() const;  // CN=gerbang test CA
  const std::string& ca_key() const;

  // Server certificates for DNS:localhost, IP:127.0.0.1, IP:::1 (CN=localhost).
  const CertFiles& server_ecdsa() const;
  const CertFiles& server_rsa() const;  // RSA 2048
  // Shorthands for the ECDSA server: chain file and key.
  const std::string& server_cert() const { return server_ecdsa().chain; }
  const std::string& server_key() const { return server_ecdsa().key; }

  // Client certificates. client(): CN=test-client, O=gerbang-test, OU=testing, URI:spiffe://gerbang.test/client.
  const CertFiles& client() const;
  // Same identity, validity ended an hour ago.
  const CertFiles& expired_client() const;
  // CN=test-client as well, but issued by a different CA (foreign_ca_cert()).
  const CertFiles& foreign_client() const;
  const std::string& foreign_ca_cert() const;

  // A server certificate for arbitrary SNI names (first name is the CN), files named <stem>.pem/.key/-chain.pem.
  CertFiles issue_server_for(const std::string& stem, const std::vector<std::string>& dns_names,
                         certs::KeyType key_type = certs::KeyType::ecdsa_p256) const;
  // Any certificate the tests need (identities for authn tests, odd validity windows).
  CertFiles issue_server(const std::string& stem, const certs::IssueOptions& options) const;
  CertFiles issue_client(const std::string& stem, const certs::IssueOptions& options) const;

  // A file in the PKI dir (for tests that want to put more PEM files beside these).
  std::string write_file(const std::string& name, const std::string& contents, unsigned mode = 0644) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::testing
