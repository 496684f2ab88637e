// A throwaway certificate authority for demos and tests (the full PKI of `gerbangctl ca` comes later).
//
// CONTRACT: every function reports failure through its `error` out-parameter (OpenSSL's error queue drained
// into it) and returns null/false; nothing throws. Private keys never leave this API except as PEM strings
// the caller asked for. Thread-safety: a DevCa may be used from one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace gerbang::certs {

enum class KeyType { ecdsa_p256, rsa_2048, rsa_3072 };

struct Issued {
  std::string cert_pem;         // leaf certificate (PEM)
  std::string chain_pem;        // leaf followed by the issuing CA (PEM)
  std::string key_pem;          // PKCS#8 private key (PEM, unencrypted)
  std::string serial_hex;       // serial number, lower-case hex
  std::string sha256_fingerprint;  // lower-case hex of SHA-256 over the DER certificate
};

struct IssueOptions {
  std::string common_name;
  std::vector<std::string> dns_names;   // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries ("127.0.0.1", "::1")
  std::vector<std::string> uris;        // subjectAltName URI entries (client identities, "spiffe://...")
  std::vector<std::string> emails;      // subjectAltName email entries
  std::string organization;             // O=, optional
  std::string organizational_unit;      // OU=, optional (department)
  KeyType key_type = KeyType::ecdsa_p256;
  // Validity window relative to now: not_before = now + not_before_offset, not_after = not_before + validity.
  // A negative offset with a short validity makes an expired certificate (for tests).
  std::chrono::seconds not_before_offset{-300};
  std::chrono::seconds validity{std::chrono::hours(24 * 90)};
};

class DevCa {
 public:
  // A new self-signed root CA (basicConstraints CA:TRUE critical, keyCertSign|cRLSign).
  static std::unique_ptr<DevCa> create(const std::string& common_name, KeyType key_type, std::string& error);
  // Loads an existing CA from PEM strings.
  static std::unique_ptr<DevCa> load(const std::string& cert_pem, const std::string& key_pem, std::string& error);
  ~DevCa();
  DevCa(const DevCa&) = delete;
  DevCa& operator=(const DevCa&) = delete;

  // serverAuth EKU, digitalSignature (+keyEncipherment for RSA), CA:FALSE.
  std::unique_ptr<Issued> issue_server(const IssueOptions& options, std::string& error);
  // clientAuth EKU, digitalSignature, CA:FALSE.
  std::unique_ptr<Issued> issue_client(const IssueOptions& options, std::string& error);

  std::string cert_pem() const;
  std::string key_pem() const;

 private:
  struct Impl;
  explicit DevCa(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes `contents` to `path` atomically (temp file + rename) with the given mode (0600 for keys,
// 0644 for certificates). Returns false and sets `error` on failure.
bool write_file_atomic(const std::string& path, const std::string& contents, unsigned mode, std::string& error);

// Creates a demo PKI in `dir`: ca.pem/ca.key, server-ecdsa.{pem,key} and server-rsa.{pem,key} for
// localhost/127.0.0.1/::1 (+ extra names), client.{pem,key} (CN=demo-client, OU=demo). Keys 0600.
bool make_demo_pki(const std::string& dir, const std::vector<std::string>& extra_dns_names, std::string& error);

}  // namespace gerbang::certs
