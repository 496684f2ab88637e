#include "certs/dev_ca.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <iterator>
#include <cstring>
#include <ctime>
#include <limits>

#include "certs/keygen.hpp"
#include "crypto/openssl.hpp"

namespace gerbang::certs {

namespace {

using namespace gerbang::crypto;

// The dev CA is back-dated so that test leaves whose window starts in the past (expired certificates)
// still nest inside the CA's window, and lives long enough never to expire under a demo.
constexpr long ca_backdate_seconds = 30L * 24 * 3600;
constexpr long ca_validity_days = 3650;

// keyUsage bit numbers, RFC 5280 §4.2.1.3.
constexpr int ku_digital_signature = 0;
constexpr int ku_key_encipherment = 2;
constexpr int ku_key_cert_sign = 5;
constexpr int ku_crl_sign = 6;

// Starts every operation with an empty queue, so a failure reports only its own errors.
void clear_openssl_errors() { ERR_clear_error(); }

bool is_rsa(EVP_PKEY* key) { return EVP_PKEY_is_a(key, "RSA") == 1; }

std::string cert_to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_to_string(bio.get());
}

// PKCS#8, unencrypted ("BEGIN PRIVATE KEY").
std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return {};
  return bio_to_string(bio.get());
}

// Never prompt on a terminal for a passphrase: an encrypted key simply fails to load.
int no_passphrase(char*, int, int, void*) { return -1; }

// A random, positive, non-zero 128-bit serial (RFC 5280 §4.1.2.2 allows up to 20 octets).
bool set_random_serial(X509* cert, std::string& serial_hex, std::string& error) {
  unsigned char bytes[16];
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      error = openssl_failure("generating a serial number");
      return false;
    }
  } while (std::all_of(std::begin(bytes), std::end(bytes), [](unsigned char b) { return b == 0; }));
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn) {
    error = openssl_failure("generating a serial number");
    return false;
  }
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1) {
    error = openssl_failure("setting the serial number");
    return false;
  }
  // The same digits as `openssl x509 -serial` (BN_bn2hex), in lower case.
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) {
    error = openssl_failure("formatting the serial number");
    return false;
  }
  serial_hex = hex;
  OPENSSL_free(hex);
  std::transform(serial_hex.begin(), serial_hex.end(), serial_hex.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return true;
}

// not_before = now + offset; not_after = not_before + validity, both computed from one `now`.
bool set_validity(X509* cert, std::time_t now, long offset_seconds, long validity_seconds, std::string& error) {
  auto adj = [&](ASN1_TIME* t, long seconds) {
    const long days = seconds / 86400;
    const long rest = seconds % 86400;
    return ASN1_TIME_adj(t, now, static_cast<int>(days), rest) != nullptr;
  };
  if (!adj(X509_getm_notBefore(cert), offset_seconds) ||
      !adj(X509_getm_notAfter(cert), offset_seconds + validity_seconds)) {
    error = openssl_failure("setting the validity window");
    return false;
  }
  return true;
}

bool add_name_entry(X509_NAME* name, const char* field, const std::string& value, std::string& error) {
  if (value.empty()) return true;
  if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    error = openssl_failure(std::string("setting subject ") + field + "=" + value);
    return false;
  }
  return true;
}

template <class T>
bool add_ext(X509* cert, int nid, T* value, bool critical, const char* what, std::string& error) {
  if (X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0, X509V3_ADD_REPLACE) != 1) {
    error = openssl_failure(std::string("adding the ") + what + " extension");
    return false;
  }
  return true;
}

bool add_basic_constraints(X509* cert, bool is_ca, std::string& error) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) {
    error = openssl_failure("allocating basicConstraints");
    return false;
  }
  bc->ca = is_ca ? 0xFF : 0;
  return add_ext(cert, NID_basic_constraints, bc.get(), true, "basicConstraints", error);
}

bool add_key_usage(X509* cert, std::initializer_list<int> bits, std::string& error) {
  Asn1BitStringPtr ku(ASN1_BIT_STRING_new());
  if (!ku) {
    error = openssl_failure("allocating keyUsage");
    return false;
  }
  for (int bit : bits) {
    if (ASN1_BIT_STRING_set_bit(ku.get(), bit, 1) != 1) {
      error = openssl_failure("setting a keyUsage bit");
      return false;
    }
  }
  return add_ext(cert, NID_key_usage, ku.get(), true, "keyUsage", error);
}

bool add_extended_key_usage(X509* cert, int purpose_nid, std::string& error) {
  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  ASN1_OBJECT* obj = OBJ_nid2obj(purpose_nid);
  if (!eku || obj == nullptr || sk_ASN1_OBJECT_push(eku.get(), obj) <= 0) {
    error = openssl_failure("building extendedKeyUsage");
    return false;
  }
  return add_ext(cert, NID_ext_key_usage, eku.get(), false, "extendedKeyUsage", error);
}

// SHA-1 over the subjectPublicKey BIT STRING: RFC 5280 §4.2.1.2 method (1).
bool public_key_id(X509* cert, Asn1OctetStringPtr& out, std::string& error) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  out.reset(ASN1_OCTET_STRING_new());
  if (!out || X509_pubkey_digest(cert, EVP_sha1(), md, &n) != 1 ||
      ASN1_OCTET_STRING_set(out.get(), md, static_cast<int>(n)) != 1) {
    error = openssl_failure("computing the key identifier");
    return false;
  }
  return true;
}

bool add_subject_key_id(X509* cert, std::string& error) {
  Asn1OctetStringPtr id;
  if (!public_key_id(cert, id, error)) return false;
  return add_ext(cert, NID_subject_key_identifier, id.get(), false, "subjectKeyIdentifier", error);
}

// keyIdentifier = the issuer's subjectKeyIdentifier (or its key hash if a loaded CA has none).
bool add_authority_key_id(X509* cert, X509* issuer, std::string& error) {
  AuthorityKeyIdPtr akid(AUTHORITY_KEYID_new());
  if (!akid) {
    error = openssl_failure("allocating authorityKeyIdentifier");
    return false;
  }
  // Parse the extension itself rather than X509_get0_subject_key_id(): that reads a cache which, for the
  // self-signed CA under construction, may predate the subjectKeyIdentifier we just added.
  Asn1OctetStringPtr skid(
      static_cast<ASN1_OCTET_STRING*>(X509_get_ext_d2i(issuer, NID_subject_key_identifier, nullptr, nullptr)));
  if (!skid) {
    ERR_clear_error();  // no extension (or an unparsable one): fall back to the key hash
    if (!public_key_id(issuer, skid, error)) return false;
  }
  akid->keyid = skid.release();
  return add_ext(cert, NID_authority_key_identifier, akid.get(), false, "authorityKeyIdentifier", error);
}

bool push_ia5_name(GENERAL_NAMES* names, int type, const std::string& value, const char* kind, std::string& error) {
  if (value.empty()) {
    error = std::string("empty subjectAltName ") + kind + " entry";
    return false;
  }
  if (value.find('\0') != std::string::npos || value.size() > 4096) {
    error = std::string("invalid subjectAltName ") + kind + " entry";
    return false;
  }
  GeneralNamePtr gn(GENERAL_NAME_new());
  ASN1_IA5STRING* str = ASN1_IA5STRING_new();
  if (!gn || str == nullptr || ASN1_STRING_set(str, value.data(), static_cast<int>(value.size())) != 1) {
    ASN1_IA5STRING_free(str);
    error = openssl_failure("building a subjectAltName entry");
    return false;
  }
  GENERAL_NAME_set0_value(gn.get(), type, str);  // gn owns str from here on
  if (sk_GENERAL_NAME_push(names, gn.get()) <= 0) {
    error = openssl_failure("building subjectAltName");
    return false;
  }
  gn.release();  // the stack owns it now
  return true;
}

bool push_ip_name(GENERAL_NAMES* names, const std::string& value, std::string& error) {
  Asn1OctetStringPtr ip(a2i_IPADDRESS(value.c_str()));
  if (!ip || value.find('\0') != std::string::npos) {
    ERR_clear_error();
    error = "invalid IP address in subjectAltName: \"" + value + "\"";
    return false;
  }
  GeneralNamePtr gn(GENERAL_NAME_new());
  if (!gn) {
    error = openssl_failure("building a subjectAltName entry");
    return false;
  }
  GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, ip.release());
  if (sk_GENERAL_NAME_push(names, gn.get()) <= 0) {
    error = openssl_failure("building subjectAltName");
    return false;
  }
  gn.release();
  return true;
}

bool add_subject_alt_names(X509* cert, const IssueOptions& o, bool subject_empty, std::string& error) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) {
    error = openssl_failure("allocating subjectAltName");
    return false;
  }
  for (const auto& v : o.dns_names)
    if (!push_ia5_name(names.get(), GEN_DNS, v, "DNS", error)) return false;
  for (const auto& v : o.ip_addresses)
    if (!push_ip_name(names.get(), v, error)) return false;
  for (const auto& v : o.uris)
    if (!push_ia5_name(names.get(), GEN_URI, v, "URI", error)) return false;
  for (const auto& v : o.emails)
    if (!push_ia5_name(names.get(), GEN_EMAIL, v, "email", error)) return false;
  if (sk_GENERAL_NAME_num(names.get()) == 0) return true;
  // RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
  return add_ext(cert, NID_subject_alt_name, names.get(), subject_empty, "subjectAltName", error);
}

}  // namespace

EvpPkeyPtr generate_key(KeyType type, std::string& error) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::ecdsa_p256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::rsa_2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
    case KeyType::rsa_3072:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072));
      break;
  }
  if (key == nullptr) error = openssl_failure("generating a private key");
  return EvpPkeyPtr(key);
}

struct DevCa::Impl {
  X509Ptr cert;
  EvpPkeyPtr key;

  enum class Role { server, client };
  std::unique_ptr<Issued> issue(const IssueOptions& options, Role role, std::string& error);
};

// create()/load() use `new` directly because the constructor is private (make_unique cannot reach it).
DevCa::DevCa(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DevCa::~DevCa() = default;

std::unique_ptr<DevCa> DevCa::create(const std::string& common_name, KeyType key_type, std::string& error) {
  clear_openssl_errors();
  if (common_name.empty()) {
    error = "the CA needs a common name";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->key = generate_key(key_type, error);
  if (!impl->key) return nullptr;

  impl->cert.reset(X509_new());
  X509* cert = impl->cert.get();
  if (cert == nullptr || X509_set_version(cert, X509_VERSION_3) != 1) {
    error = openssl_failure("allocating the CA certificate");
    return nullptr;
  }
  std::string serial_hex;
  if (!set_random_serial(cert, serial_hex, error)) return nullptr;
  if (!set_validity(cert, std::time(nullptr), -ca_backdate_seconds, ca_validity_days * 86400L + ca_backdate_seconds,
                    error))
    return nullptr;
  X509_NAME* name = X509_get_subject_name(cert);
  if (!add_name_entry(name, "CN", common_name, error)) return nullptr;
  if (X509_set_issuer_name(cert, name) != 1 || X509_set_pubkey(cert, impl->key.get()) != 1) {
    error = openssl_failure("building the CA certificate");
    return nullptr;
  }
  if (!add_basic_constraints(cert, true, error) ||
      !add_key_usage(cert, {ku_key_cert_sign, ku_crl_sign}, error) || !add_subject_key_id(cert, error) ||
      !add_authority_key_id(cert, cert, error))
    return nullptr;
  if (X509_sign(cert, impl->key.get(), EVP_sha256()) <= 0) {
    error = openssl_failure("signing the CA certificate");
    return nullptr;
  }
  return std::unique_ptr<DevCa>(new DevCa(std::move(impl)));
}

std::unique_ptr<DevCa> DevCa::load(const std::string& cert_pem, const std::string& key_pem, std::string& error) {
  clear_openssl_errors();
  auto impl = std::make_unique<Impl>();
  {
    BioPtr bio = memory_bio(cert_pem);
    if (bio) impl->cert.reset(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!impl->cert) {
      error = openssl_failure("reading the CA certificate (expected PEM \"BEGIN CERTIFICATE\")");
      return nullptr;
    }
  }
  {
    BioPtr bio = memory_bio(key_pem);
    if (bio) impl->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    if (!impl->key) {
      error = openssl_failure("reading the CA private key (expected an unencrypted PEM key)");
      return nullptr;
    }
  }
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    error = openssl_failure("the CA private key does not match the CA certificate");
    return nullptr;
  }
  // X509_check_ca() returns 0 only when the certificate may not sign certificates.
  if (X509_check_ca(impl->cert.get()) == 0) {
    ERR_clear_error();
    error = "the certificate is not a CA (basicConstraints CA:TRUE or keyCertSign missing)";
    return nullptr;
  }
  return std::unique_ptr<DevCa>(new DevCa(std::move(impl)));
}

std::unique_ptr<Issued> DevCa::issue_server(const IssueOptions& options, std::string& error) {
  return impl_->issue(options, Impl::Role::server, error);
}

std::unique_ptr<Issued> DevCa::issue_client(const IssueOptions& options, std::string& error) {
  return impl_->issue(options, Impl::Role::client, error);
}

std::string DevCa::cert_pem() const { return cert_to_pem(impl_->cert.get()); }
std::string DevCa::key_pem() const { return key_to_pem(impl_->key.get()); }

std::unique_ptr<Issued> DevCa::Impl::issue(const IssueOptions& o, Role role, std::string& error) {
  clear_openssl_errors();
  using Seconds = std::chrono::seconds::rep;
  // ASN1_TIME_adj takes days as int; ±100 years is plenty for tests and keeps every sum far from overflow.
  constexpr Seconds limit = 100LL * 366 * 86400;
  const Seconds offset = o.not_before_offset.count();
  const Seconds validity = o.validity.count();
  if (offset < -limit || offset > limit || validity <= 0 || validity > limit) {
    error = "certificate validity out of range: not_before_offset must be within ±100 years and validity "
            "within (0s, 100 years]";
    return nullptr;
  }

  auto issued = std::make_unique<Issued>();
  EvpPkeyPtr leaf_key = generate_key(o.key_type, error);
  if (!leaf_key) return nullptr;

  X509Ptr leaf(X509_new());
  if (!leaf || X509_set_version(leaf.get(), X509_VERSION_3) != 1) {
    error = openssl_failure("allocating the certificate");
    return nullptr;
  }
  if (!set_random_serial(leaf.get(), issued->serial_hex, error)) return nullptr;
  if (!set_validity(leaf.get(), std::time(nullptr), static_cast<long>(offset), static_cast<long>(validity), error))
    return nullptr;

  X509_NAME* subject = X509_get_subject_name(leaf.get());
  if (!add_name_entry(subject, "O", o.organization, error) ||
      !add_name_entry(subject, "OU", o.organizational_unit, error) ||
      !add_name_entry(subject, "CN", o.common_name, error))
    return nullptr;
  const bool subject_empty = X509_NAME_entry_count(subject) == 0;
  if (subject_empty && o.dns_names.empty() && o.ip_addresses.empty() && o.uris.empty() && o.emails.empty()) {
    error = "a certificate needs a common name or at least one subjectAltName";
    return nullptr;
  }

  if (X509_set_issuer_name(leaf.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(leaf.get(), leaf_key.get()) != 1) {
    error = openssl_failure("building the certificate");
    return nullptr;
  }

  std::initializer_list<int> server_rsa_ku = {ku_digital_signature, ku_key_encipherment};
  std::initializer_list<int> signature_ku = {ku_digital_signature};
  const bool server = role == Role::server;
  if (!add_basic_constraints(leaf.get(), false, error) ||
      !add_key_usage(leaf.get(), server && is_rsa(leaf_key.get()) ? server_rsa_ku : signature_ku, error) ||
      !add_extended_key_usage(leaf.get(), server ? NID_server_auth : NID_client_auth, error) ||
      !add_subject_key_id(leaf.get(), error) || !add_authority_key_id(leaf.get(), cert.get(), error) ||
      !add_subject_alt_names(leaf.get(), o, subject_empty, error))
    return nullptr;

  if (X509_sign(leaf.get(), key.get(), EVP_sha256()) <= 0) {
    error = openssl_failure("signing the certificate");
    return nullptr;
  }

  issued->cert_pem = cert_to_pem(leaf.get());
  std::string ca_pem = cert_to_pem(cert.get());
  issued->key_pem = key_to_pem(leaf_key.get());
  issued->sha256_fingerprint = sha256_fingerprint(leaf.get());
  if (issued->cert_pem.empty() || ca_pem.empty() || issued->key_pem.empty() || issued->sha256_fingerprint.empty()) {
    error = openssl_failure("encoding the certificate or key as PEM");
    return nullptr;
  }
  issued->chain_pem = issued->cert_pem + ca_pem;
  return issued;
}

bool write_file_atomic(const std::string& path, const std::string& contents, unsigned mode, std::string& error) {
  if (path.empty()) {
    error = "cannot write a file with an empty path";
    return false;
  }
  if ((mode & ~07777u) != 0) {
    error = "invalid file mode for " + path;
    return false;
  }
  // The temporary lives next to the target so rename() stays within one filesystem and is atomic.
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    error = "cannot create a temporary file for " + path + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    error = what + " " + path + ": " + std::strerror(err);
    return false;
  };
  // fchmod ignores the umask, so the mode is exactly what the caller asked for; mkostemp already made the
  // file 0600, so a key is never readable by others even for an instant.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) return fail("cannot set the mode of");
  const char* p = contents.data();
  std::size_t left = contents.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot flush");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    error = "cannot close " + path + ": " + std::strerror(err);
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    error = "cannot rename the temporary file to " + path + ": " + std::strerror(err);
    return false;
  }
  return true;
}

namespace {

// mkdir -p with mode 0700 for every directory it creates; existing directories are left as they are.
bool make_directories(const std::string& dir, std::string& error) {
  std::string partial;
  std::size_t pos = 0;
  while (pos <= dir.size()) {
    std::size_t next = dir.find('/', pos);
    if (next == std::string::npos) next = dir.size();
    partial = dir.substr(0, next);
    pos = next + 1;
    if (partial.empty()) continue;  // leading '/'
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      error = "cannot create directory " + partial + ": " + std::strerror(errno);
      return false;
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = dir + " is not a directory";
    return false;
  }
  return true;
}

}  // namespace

bool make_demo_pki(const std::string& dir, const std::vector<std::string>& extra_dns_names, std::string& error) {
  if (dir.empty()) {
    error = "the output directory is empty";
    return false;
  }
  if (!make_directories(dir, error)) return false;

  auto ca = DevCa::create("gerbang demo CA", KeyType::ecdsa_p256, error);
  if (!ca) return false;

  IssueOptions server;
  server.common_name = "localhost";
  server.dns_names = {"localhost"};
  for (const auto& name : extra_dns_names)
    if (name != "localhost") server.dns_names.push_back(name);
  server.ip_addresses = {"127.0.0.1", "::1"};

  server.key_type = KeyType::ecdsa_p256;
  auto server_ecdsa = ca->issue_server(server, error);
  if (!server_ecdsa) return false;
  server.key_type = KeyType::rsa_2048;
  auto server_rsa = ca->issue_server(server, error);
  if (!server_rsa) return false;

  IssueOptions client;
  client.common_name = "demo-client";
  client.organizational_unit = "demo";
  client.uris = {"spiffe://demo/client"};
  auto client_cert = ca->issue_client(client, error);
  if (!client_cert) return false;

  const std::string base = dir.back() == '/' ? dir : dir + "/";
  struct File {
    const char* name;
    const std::string& contents;
    unsigned mode;
  };
  const std::string ca_cert = ca->cert_pem();
  const std::string ca_key = ca->key_pem();
  const File files[] = {
      {"ca.pem", ca_cert, 0644},
      {"ca.key", ca_key, 0600},
      {"server-ecdsa.pem", server_ecdsa->chain_pem, 0644},  // leaf + CA, ready to serve as a chain
      {"server-ecdsa.key", server_ecdsa->key_pem, 0600},
      {"server-rsa.pem", server_rsa->chain_pem, 0644},
      {"server-rsa.key", server_rsa->key_pem, 0600},
      {"client.pem", client_cert->cert_pem, 0644},
      {"client.key", client_cert->key_pem, 0600},
  };
  for (const auto& f : files)
    if (!write_file_atomic(base + f.name, f.contents, f.mode, error)) return false;
  return true;
}

}  // namespace gerbang::certs
