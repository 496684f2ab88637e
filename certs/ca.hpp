// The department PKI behind `gerbangctl ca|cert|crl`: an offline-style root CA, one issuing intermediate,
// a certificate database (index.txt), serial numbers, CRLs, PKCS#12 bundles; plus the read-only helpers the
// gateway uses (certificate expiries for /metrics, loading and checking a CRL). The directory layout and the
// index format are documented in docs/pki.md.
//
// CONTRACT: failures are reported through an `error` out-parameter (with OpenSSL's error queue drained into
// it) and a null/false/nullopt result; nothing throws except std::bad_alloc. Private keys are written 0600,
// optionally encrypted (PKCS#8, AES-256-CBC, PBKDF2); the intermediate key is checked for group/other access
// before it is used (STYLE.md §2.13).
// THREAD SAFETY: a CertificateAuthority may be used from one thread at a time. Functions that change the CA
// directory (issue, revoke_certificate, make_crl) take an exclusive flock() on <dir>/.lock, so two gerbangctl
// processes never interleave their read-modify-write of index.txt or crlnumber. The free helpers are reentrant.
// PRECONDITION: sodium_init() has succeeded before a Passphrase is constructed (it lives in sodium_malloc).
#pragma once

#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "certs/dev_ca.hpp"  // KeyType, write_file_atomic
#include "crypto/openssl.hpp"
#include "crypto/secret.hpp"

namespace gerbang::certs {

// TODO(pki): move these next to the other aliases in crypto/openssl.hpp (outside this change's files).
using X509CrlPtr = std::unique_ptr<X509_CRL, crypto::Deleter<X509_CRL_free>>;
using X509RevokedPtr = std::unique_ptr<X509_REVOKED, crypto::Deleter<X509_REVOKED_free>>;
using Asn1EnumeratedPtr = std::unique_ptr<ASN1_ENUMERATED, crypto::Deleter<ASN1_ENUMERATED_free>>;
using NameConstraintsPtr = std::unique_ptr<NAME_CONSTRAINTS, crypto::Deleter<NAME_CONSTRAINTS_free>>;
using GeneralSubtreePtr = std::unique_ptr<GENERAL_SUBTREE, crypto::Deleter<GENERAL_SUBTREE_free>>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, crypto::Deleter<PKCS12_free>>;

// File names inside a CA directory (docs/pki.md).
namespace ca_files {
inline constexpr const char* root_cert = "root.pem";
inline constexpr const char* root_key = "root.key";
inline constexpr const char* intermediate_cert = "intermediate.pem";
inline constexpr const char* intermediate_key = "intermediate.key";
inline constexpr const char* chain = "ca-chain.pem";  // intermediate + root: the gateway's client_ca
inline constexpr const char* index = "index.txt";
inline constexpr const char* crl_number = "crlnumber";
inline constexpr const char* issued_dir = "issued";    // issued/<serial>.pem, a copy of every certificate
inline constexpr const char* lock = ".lock";
}  // namespace ca_files

// A passphrase for encrypted PEM keys and PKCS#12 bundles, held in sodium_malloc memory (wiped on free).
// Move-only; no operator<<.
class Passphrase {
 public:
  static constexpr std::size_t max_size = 1023;

  // The first line of `path`, without its line ending (like openssl's `-passin file:`). Errors: unreadable,
  // mode allowing group/other access, empty, or longer than max_size.
  static std::optional<Passphrase> from_file(const std::string& path, std::string& error);
  // For tests and callers that already hold the passphrase; nullopt if empty or too long.
  static std::optional<Passphrase> from_string(std::string_view text);

  const char* data() const noexcept { return reinterpret_cast<const char*>(bytes_.data()); }
  std::size_t size() const noexcept { return size_; }

 private:
  Passphrase() = default;
  crypto::SecretBytes<max_size + 1> bytes_;
  std::size_t size_ = 0;
};

struct CaInitOptions {
  std::string dir;                             // created 0700 if missing; must not already hold a CA
  std::string name = "gerbang Security Office";  // O= of both CAs; CN= "<name> Root CA" / "<name> Issuing CA"
  KeyType key_type = KeyType::ecdsa_p256;      // ecdsa_p256 or rsa_3072 (rsa_2048 is refused)
  const Passphrase* passphrase = nullptr;      // encrypts root.key and intermediate.key when set
  // Permitted subtrees of the intermediate, "DNS:.kota.go.id", "email:kota.go.id", "URI:.kota.go.id",
  // "IP:10.0.0.0/8" (CIDR or addr/mask); prefix "excluded:" for an excluded subtree. Empty = none.
  std::vector<std::string> name_constraints;
  int root_days = 7300;          // 1..36500
  int intermediate_days = 3650;  // 1..root_days
};

// Creates root (CA:TRUE pathlen:1, keyCertSign|cRLSign, SKI) and intermediate (pathlen:0, AKI/SKI, name
// constraints), root.pem, ca-chain.pem, an empty index.txt and crlnumber.
bool init_ca(const CaInitOptions& options, std::string& error);

enum class CertType { client, server };

// RFC 5280 §5.3.1 CRLReason values we issue (certificateHold is not offered: revocation here is final).
enum class RevocationReason {
  unspecified = 0,
  key_compromise = 1,
  ca_compromise = 2,
  affiliation_changed = 3,
  superseded = 4,
  cessation_of_operation = 5,
  privilege_withdrawn = 9,
};
// Accepts the RFC 5280 names ("keyCompromise", "cessationOfOperation", ...), case-insensitively.
std::optional<RevocationReason> parse_revocation_reason(std::string_view name);
const char* revocation_reason_name(RevocationReason reason);  // "keyCompromise"

enum class CertStatus { valid, revoked };

// One line of index.txt.
struct IndexEntry {
  CertStatus status = CertStatus::valid;
  std::string serial_hex;  // lower-case hex, as printed by `openssl x509 -serial` (lower-cased)
  CertType type = CertType::client;
  std::time_t not_after = 0;
  std::time_t revoked_at = 0;  // 0 unless revoked
  RevocationReason reason = RevocationReason::unspecified;
  std::string subject;  // RFC 2253, e.g. "CN=dinkes,OU=Dinas Kesehatan,O=Kota X Security Office"
};

// Reads <dir>/index.txt. nullopt with `error` on an unreadable or malformed file (naming the line).
std::optional<std::vector<IndexEntry>> read_index(const std::string& dir, std::string& error);

// Marks SERIAL revoked at `when`. `serial` is hex (optional "0x", colons and case ignored). Errors: unknown
// serial, already revoked. Needs no private key; the revocation reaches clients with the next `make_crl`.
bool revoke_certificate(const std::string& dir, const std::string& serial, RevocationReason reason,
                        std::time_t when, std::string& error);

// The index in OpenSSL's `ca` database format (what `openssl ocsp -index FILE` serves), plus the attribute
// file it needs beside it ("unique_subject = no": renewals reuse subjects). Serials upper-case hex; times
// UTCTime (GeneralizedTime from 2050); revoked entries carry "time,reason".
std::string openssl_index(const std::vector<IndexEntry>& entries);
inline constexpr const char* openssl_index_attr = "unique_subject = no\n";

struct LeafRequest {
  std::string name;                // CN and file stem: [A-Za-z0-9._-]{1,64}
  CertType type = CertType::client;
  std::vector<std::string> sans;   // "DNS:x", "URI:spiffe://...", "email:x", "IP:x"
  std::string ou;                  // OU= (department), optional
  std::string ocsp_url;            // authorityInfoAccess "OCSP;URI:<url>", optional; must be http://
  KeyType key_type = KeyType::ecdsa_p256;
  std::chrono::seconds validity{std::chrono::hours(24 * 90)};
  // not_before = now + offset. Only tests move it: negative with a short validity gives an expired
  // certificate, positive a not-yet-valid one. The CLI always uses the default (5 minutes of clock skew).
  std::chrono::seconds not_before_offset{-300};
};

struct IssuedLeaf {
  crypto::X509Ptr cert;
  crypto::EvpPkeyPtr key;
  crypto::X509Ptr issuer;  // the intermediate
  std::string serial_hex;
  std::string subject;
  std::string cert_pem;
  std::string chain_pem;  // leaf + intermediate
};

// The issuing side of a CA directory: the intermediate's certificate and key.
class CertificateAuthority {
 public:
  // `passphrase` must be given when intermediate.key is encrypted; a wrong one is a clear error.
  static std::unique_ptr<CertificateAuthority> open(const std::string& dir, const Passphrase* passphrase,
                                                    std::string& error);
  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  // Key + certificate (EKU clientAuth or serverAuth, digitalSignature (+keyEncipherment for RSA), CA:FALSE,
  // AKI/SKI, SANs), recorded in index.txt and issued/<serial>.pem. Refuses a validity outliving the
  // intermediate and a server certificate without a DNS or IP SAN.
  std::unique_ptr<IssuedLeaf> issue(const LeafRequest& request, std::string& error);

  // A v2 CRL of every revoked entry (reason codes, CRL number, AKI), signed by the intermediate, valid for
  // `validity` from now; PEM. Increments crlnumber.
  std::optional<std::string> make_crl(std::chrono::seconds validity, std::string& error);

  X509* intermediate() const noexcept;

 private:
  struct Impl;
  explicit CertificateAuthority(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// PKCS#12 (DER) with the key, the leaf and the intermediate; PBES2 AES-256-CBC / PBKDF2-HMAC-SHA256 for the
// key and certificate bags and an HMAC-SHA256 MAC, set explicitly rather than trusting library defaults.
std::optional<std::string> make_pkcs12(const IssuedLeaf& leaf, const Passphrase& passphrase, std::string& error);

struct LeafFiles {
  std::string key, cert, chain, p12;  // p12 empty unless requested
};
// Writes <out_dir>/<name>.key (0600), <name>.pem, <name>-chain.pem (0644) and, with a passphrase,
// <name>.p12 (0600). Refuses to overwrite an existing key or bundle.
std::optional<LeafFiles> write_leaf_files(const IssuedLeaf& leaf, const std::string& out_dir,
                                          const std::string& name, const Passphrase* p12_passphrase,
                                          std::string& error);
// True if write_leaf_files would refuse (so the CLI can check before issuing); sets `error`.
bool leaf_files_exist(const std::string& out_dir, const std::string& name, bool p12, std::string& error);

// ---- helpers for the gateway -----------------------------------------------------------------------------

struct CertExpiry {
  std::string subject;             // RFC 2253
  std::time_t not_after = 0;
  long long seconds_left = 0;      // negative once expired
};

// Every certificate in a PEM file (a chain or a CA bundle), in file order. The one-argument form returns an
// empty vector on any error; use the other to learn why.
std::vector<CertExpiry> certificate_expiries(const std::string& pem_file);
std::vector<CertExpiry> certificate_expiries(const std::string& pem_file, std::time_t now, std::string& error);

struct CrlInfo {
  std::string issuer;  // RFC 2253
  std::time_t last_update = 0;
  std::time_t next_update = 0;  // 0 if the CRL has none
  std::size_t revoked = 0;
  std::string crl_number;  // decimal, empty if absent
};

struct LoadedCrl {
  X509CrlPtr crl;
  CrlInfo info;
};

// Loads a CRL (PEM or DER) and checks it against the CA certificates in `ca_file`: the issuer is among them,
// the signature verifies, lastUpdate is not in the future (5 minutes of skew) and nextUpdate has not passed.
// The error names the file and what is wrong ("... expired at 2026-05-01T00:00:00Z; publish a new one").
std::optional<LoadedCrl> load_crl_file(const std::string& crl_file, const std::string& ca_file, std::time_t now,
                                       std::string& error);

// "2026-05-01T00:00:00Z".
std::string format_utc(std::time_t t);

}  // namespace gerbang::certs
