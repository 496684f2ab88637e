#include "certs/ca.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "certs/keygen.hpp"
#include "crypto/keys.hpp"

namespace gerbang::certs {

namespace {

using namespace gerbang::crypto;

constexpr const char* index_header =
    "# gerbang CA index v1: status serial type not_after revoked_at reason subject (tab-separated)\n";
constexpr long clock_skew_seconds = 300;
constexpr int pkcs12_iterations = 100000;

// ---- small utilities ----------------------------------------------------------------------------------------

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::optional<std::string> read_text_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  return out.str();
}

// mkdir -p; directories it creates are 0700 (a CA directory holds private keys).
bool make_directories(const std::string& dir, std::string& error) {
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string partial = dir.substr(0, pos);
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

// Exclusive flock() on <dir>/.lock for the lifetime of the object.
class DirLock {
 public:
  DirLock(const std::string& dir, std::string& error) {
    const std::string path = join_path(dir, ca_files::lock);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      error = "cannot open the lock file " + path + ": " + std::strerror(errno);
      return;
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      error = "cannot lock " + path + ": " + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  bool locked() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

std::time_t asn1_to_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return ::timegm(&tm);
}

std::optional<std::time_t> parse_utc(const std::string& s) {
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  if (in.fail()) return std::nullopt;
  return ::timegm(&tm);
}

std::string name_to_string(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  return bio_to_string(bio.get());
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_to_string(bio.get());
}

int passphrase_cb(char* buf, int size, int, void* u) {
  const auto* pass = static_cast<const Passphrase*>(u);
  if (pass == nullptr || size <= 0) return -1;
  const std::size_t n = std::min(pass->size(), static_cast<std::size_t>(size));
  std::memcpy(buf, pass->data(), n);
  return static_cast<int>(n);
}

// PKCS#8; encrypted with AES-256-CBC (PBES2, PBKDF2) when a passphrase is given.
std::string key_pem(EVP_PKEY* key, const Passphrase* pass) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  const EVP_CIPHER* cipher = pass != nullptr ? EVP_aes_256_cbc() : nullptr;
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, pass != nullptr ? passphrase_cb : nullptr,
                                       const_cast<Passphrase*>(pass)) != 1)
    return {};
  return bio_to_string(bio.get());
}

bool is_encrypted_pem(const std::string& pem) {
  return pem.find("BEGIN ENCRYPTED PRIVATE KEY") != std::string::npos ||
         pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos;
}

EvpPkeyPtr load_key_file(const std::string& path, const Passphrase* pass, std::string& error) {
  if (auto problem = private_key_file_problem(path)) {
    error = *problem;
    return nullptr;
  }
  auto pem = read_text_file(path, error);
  if (!pem) return nullptr;
  const bool encrypted = is_encrypted_pem(*pem);
  if (encrypted && pass == nullptr) {
    error = "the private key " + path + " is encrypted: give its passphrase (--passphrase-file)";
    return nullptr;
  }
  BioPtr bio = memory_bio(*pem);
  ERR_clear_error();
  // Never prompt on a terminal: without a passphrase the callback refuses.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_cb, const_cast<Passphrase*>(pass)));
  if (!key) {
    error = encrypted ? openssl_failure("wrong passphrase for " + path + " (or the file is damaged)")
                      : openssl_failure("cannot read the private key " + path);
    return nullptr;
  }
  return key;
}

X509Ptr load_cert_file(const std::string& path, std::string& error) {
  auto pem = read_text_file(path, error);
  if (!pem) return nullptr;
  BioPtr bio = memory_bio(*pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) error = openssl_failure("cannot read the certificate " + path);
  return cert;
}

std::optional<std::vector<X509Ptr>> load_cert_bundle(const std::string& path, std::string& error) {
  auto pem = read_text_file(path, error);
  if (!pem) return std::nullopt;
  BioPtr bio = memory_bio(*pem);
  std::vector<X509Ptr> out;
  ERR_clear_error();
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  // The loop ends with "no start line" at the end of the data; anything else is a damaged file.
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    error = openssl_failure("cannot parse " + path);
    return std::nullopt;
  }
  ERR_clear_error();
  if (out.empty()) {
    error = path + " holds no PEM certificate";
    return std::nullopt;
  }
  return out;
}

// ---- serial numbers ---------------------------------------------------------------------------------------

// Lower-case hex of a positive serial, as BN_bn2hex prints it.
std::string serial_to_hex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return {};
  std::string out = lower(hex);
  OPENSSL_free(hex);
  return out;
}

// User input ("0x3F:A0...", any case) to the canonical form; nullopt if it is not hex.
std::optional<std::string> canonical_serial(std::string s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.erase(0, 2);
  s.erase(std::remove(s.begin(), s.end(), ':'), s.end());
  if (s.empty() || s.size() > 40 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return std::nullopt;
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, s.c_str()) == 0) return std::nullopt;
  BignumPtr bn(raw);
  Asn1IntegerPtr i(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!i) return std::nullopt;
  return serial_to_hex(i.get());
}

// 128 random bits, positive and non-zero (RFC 5280 §4.1.2.2 allows up to 20 octets; CA/B asks for 64+ bits).
Asn1IntegerPtr random_serial(std::string& error) {
  unsigned char bytes[16];
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      error = openssl_failure("generating a serial number");
      return nullptr;
    }
  } while (std::all_of(std::begin(bytes), std::end(bytes), [](unsigned char b) { return b == 0; }));
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  Asn1IntegerPtr out(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
  if (!out) error = openssl_failure("encoding a serial number");
  return out;
}

// ---- building certificates --------------------------------------------------------------------------------

bool add_conf_ext(X509* cert, X509* issuer, int nid, const char* value, std::string& error) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    error = openssl_failure(std::string("adding the extension ") + OBJ_nid2sn(nid) + " = " + value);
    return false;
  }
  return true;
}

bool add_name_entry(X509_NAME* name, const char* field, const std::string& value, std::string& error) {
  if (value.empty()) return true;
  if (value.size() > 64 || has_control_chars(value)) {
    error = std::string("subject ") + field + " must be 1..64 printable characters";
    return false;
  }
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    error = openssl_failure(std::string("setting subject ") + field);
    return false;
  }
  return true;
}

bool set_validity(X509* cert, std::time_t not_before, std::time_t not_after, std::string& error) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), not_before) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == nullptr) {
    error = openssl_failure("setting the validity window");
    return false;
  }
  return true;
}

// "DNS:x" → (GEN_DNS, "x"). Types are case-insensitive; "email"/"mail" and "IP"/"IPAddress" both work.
bool parse_general_name_spec(const std::string& spec, int& type, std::string& value, std::string& error) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 >= spec.size()) {
    error = "expected TYPE:VALUE (DNS:, URI:, email:, IP:), got \"" + spec + "\"";
    return false;
  }
  const std::string kind = lower(spec.substr(0, colon));
  value = spec.substr(colon + 1);
  if (kind == "dns") type = GEN_DNS;
  else if (kind == "uri") type = GEN_URI;
  else if (kind == "email" || kind == "mail") type = GEN_EMAIL;
  else if (kind == "ip" || kind == "ipaddress") type = GEN_IPADD;
  else {
    error = "unsupported name type \"" + spec.substr(0, colon) + "\" in \"" + spec + "\" (use DNS, URI, email, IP)";
    return false;
  }
  if (has_control_chars(value) || value.size() > 1024) {
    error = "invalid value in \"" + spec + "\"";
    return false;
  }
  return true;
}

// "10.0.0.0/8" → "10.0.0.0/255.0.0.0" (a2i_GENERAL_NAME wants the mask as an address).
std::optional<std::string> cidr_to_mask(const std::string& value) {
  const auto slash = value.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string addr = value.substr(0, slash), bits = value.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos) return value;
  const int prefix = std::stoi(bits);
  const bool v6 = addr.find(':') != std::string::npos;
  const int total = v6 ? 128 : 32;
  if (prefix > total) return std::nullopt;
  unsigned char mask[16] = {};
  for (int i = 0; i < prefix; ++i) mask[i / 8] |= static_cast<unsigned char>(0x80 >> (i % 8));
  std::string out = addr + "/";
  char buf[8];
  if (!v6) {
    for (int i = 0; i < 4; ++i) {
      std::snprintf(buf, sizeof buf, i == 0 ? "%u" : ".%u", mask[i]);
      out += buf;
    }
  } else {
    for (int i = 0; i < 8; ++i) {
      std::snprintf(buf, sizeof buf, i == 0 ? "%x" : ":%x", (mask[2 * i] << 8) | mask[2 * i + 1]);
      out += buf;
    }
  }
  return out;
}

GeneralNamePtr make_general_name(const std::string& spec, bool name_constraint, std::string& error) {
  int type = 0;
  std::string value;
  if (!parse_general_name_spec(spec, type, value, error)) return nullptr;
  if (name_constraint && type == GEN_IPADD) {
    auto masked = cidr_to_mask(value);
    if (!masked) {
      error = "an IP name constraint needs a network, like IP:10.0.0.0/8, got \"" + spec + "\"";
      return nullptr;
    }
    value = *masked;
  }
  GeneralNamePtr gn(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), name_constraint ? 1 : 0));
  if (!gn) error = openssl_failure("invalid name \"" + spec + "\"");
  return gn;
}

bool add_subject_alt_names(X509* cert, const std::vector<std::string>& sans, std::string& error) {
  if (sans.empty()) return true;
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) {
    error = openssl_failure("allocating subjectAltName");
    return false;
  }
  for (const auto& spec : sans) {
    GeneralNamePtr gn = make_general_name(spec, false, error);
    if (!gn) {
      error = "--san: " + error;
      return false;
    }
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) <= 0) {
      error = openssl_failure("building subjectAltName");
      return false;
    }
    gn.release();  // owned by the stack now
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_REPLACE) != 1) {
    error = openssl_failure("adding subjectAltName");
    return false;
  }
  return true;
}

// RFC 5280 §4.2.1.10: conforming CAs MUST mark nameConstraints critical.
bool add_name_constraints(X509* cert, const std::vector<std::string>& specs, std::string& error) {
  if (specs.empty()) return true;
  NameConstraintsPtr nc(NAME_CONSTRAINTS_new());
  if (!nc) {
    error = openssl_failure("allocating nameConstraints");
    return false;
  }
  for (std::string spec : specs) {
    bool excluded = false;
    for (const char* prefix : {"excluded:", "excluded;"})
      if (lower(spec).rfind(prefix, 0) == 0) {
        excluded = true;
        spec.erase(0, std::strlen(prefix));
      }
    for (const char* prefix : {"permitted:", "permitted;"})
      if (lower(spec).rfind(prefix, 0) == 0) spec.erase(0, std::strlen(prefix));
    // OpenSSL matches a URI constraint against the URI's host only, so "URI:spiffe://kota.go.id" would match
    // nothing and silently refuse every URI SAN.
    if (lower(spec).rfind("uri:", 0) == 0 && spec.find("://") != std::string::npos) {
      error = "--name-constraints: a URI constraint is a host name (URI:kota.go.id or URI:.kota.go.id), got \"" +
              spec + "\"";
      return false;
    }
    GeneralNamePtr gn = make_general_name(spec, true, error);
    if (!gn) {
      error = "--name-constraints: " + error;
      return false;
    }
    auto*& tree = excluded ? nc->excludedSubtrees : nc->permittedSubtrees;
    if (tree == nullptr) tree = sk_GENERAL_SUBTREE_new_null();
    GeneralSubtreePtr sub(GENERAL_SUBTREE_new());
    if (tree == nullptr || !sub) {
      error = openssl_failure("building nameConstraints");
      return false;
    }
    GENERAL_NAME_free(sub->base);
    sub->base = gn.release();
    if (sk_GENERAL_SUBTREE_push(tree, sub.get()) <= 0) {
      error = openssl_failure("building nameConstraints");
      return false;
    }
    sub.release();
  }
  if (X509_add1_ext_i2d(cert, NID_name_constraints, nc.get(), 1, X509V3_ADD_REPLACE) != 1) {
    error = openssl_failure("adding nameConstraints");
    return false;
  }
  return true;
}

struct CaCertSpec {
  std::string cn, org;
  int pathlen = 0;
  long days = 0;
  std::vector<std::string> name_constraints;
};

// A CA certificate for `key`, signed by `issuer_key` (self-signed when `issuer` is null).
X509Ptr make_ca_cert(const CaCertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, std::time_t now,
                     std::string& error) {
  X509Ptr cert(X509_new());
  Asn1IntegerPtr serial = random_serial(error);
  if (!serial) return nullptr;
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(cert.get(), serial.get()) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
    error = openssl_failure("building a CA certificate");
    return nullptr;
  }
  if (!set_validity(cert.get(), now - clock_skew_seconds, now + spec.days * 86400, error)) return nullptr;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!add_name_entry(subject, "O", spec.org, error) || !add_name_entry(subject, "CN", spec.cn, error))
    return nullptr;
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1) {
    error = openssl_failure("setting the issuer name");
    return nullptr;
  }
  const std::string bc = "critical,CA:TRUE,pathlen:" + std::to_string(spec.pathlen);
  if (!add_conf_ext(cert.get(), issuer_cert, NID_basic_constraints, bc.c_str(), error) ||
      !add_conf_ext(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign", error) ||
      !add_conf_ext(cert.get(), issuer_cert, NID_subject_key_identifier, "hash", error))
    return nullptr;
  // A self-signed root needs no authorityKeyIdentifier (RFC 5280 §4.2.1.1).
  if (issuer != nullptr && !add_conf_ext(cert.get(), issuer, NID_authority_key_identifier, "keyid:always", error))
    return nullptr;
  if (!add_name_constraints(cert.get(), spec.name_constraints, error)) return nullptr;
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
    error = openssl_failure("signing a CA certificate");
    return nullptr;
  }
  return cert;
}

// ---- index.txt --------------------------------------------------------------------------------------------

const char* type_name(CertType t) { return t == CertType::server ? "server" : "client"; }

std::string format_index(const std::vector<IndexEntry>& entries) {
  std::string out = index_header;
  for (const auto& e : entries) {
    const bool revoked = e.status == CertStatus::revoked;
    out += revoked ? "R" : "V";
    out += '\t' + e.serial_hex + '\t' + type_name(e.type) + '\t' + format_utc(e.not_after) + '\t';
    out += revoked ? format_utc(e.revoked_at) : "-";
    out += '\t';
    out += revoked ? revocation_reason_name(e.reason) : "-";
    out += '\t' + e.subject + '\n';
  }
  return out;
}

bool write_index(const std::string& dir, const std::vector<IndexEntry>& entries, std::string& error) {
  return write_file_atomic(join_path(dir, ca_files::index), format_index(entries), 0644, error);
}

bool is_ca_dir(const std::string& dir) {
  return file_exists(join_path(dir, ca_files::intermediate_cert)) && file_exists(join_path(dir, ca_files::index));
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------------------

std::string format_utc(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<Passphrase> Passphrase::from_file(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read the passphrase file " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "the passphrase file " + path + " is not a regular file";
    return std::nullopt;
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = "the passphrase file " + path + " has mode " + mode +
            "; it must not be accessible by group or others (chmod 600)";
    return std::nullopt;
  }
  Passphrase p;
  // Read straight into the sodium_malloc buffer so the passphrase never sits in ordinary heap memory.
  auto* buf = reinterpret_cast<char*>(p.bytes_.data());
  std::size_t n = 0;
  while (n <= max_size) {
    const ssize_t r = ::read(fd, buf + n, max_size + 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error = "cannot read the passphrase file " + path + ": " + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
    if (std::memchr(buf, '\n', n) != nullptr) break;
  }
  ::close(fd);
  const void* nl = std::memchr(buf, '\n', n);
  std::size_t len = nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - buf) : n;
  if (nl == nullptr && n > max_size) {
    error = "the passphrase in " + path + " is longer than " + std::to_string(max_size) + " bytes";
    return std::nullopt;
  }
  if (len > 0 && buf[len - 1] == '\r') --len;
  std::memset(buf + len, 0, max_size + 1 - len);  // drop the rest of the file
  if (len == 0) {
    error = "the passphrase file " + path + " is empty (the passphrase is its first line)";
    return std::nullopt;
  }
  p.size_ = len;
  return p;
}

std::optional<Passphrase> Passphrase::from_string(std::string_view text) {
  if (text.empty() || text.size() > max_size) return std::nullopt;
  Passphrase p;
  std::memcpy(p.bytes_.data(), text.data(), text.size());
  p.size_ = text.size();
  return p;
}

std::optional<RevocationReason> parse_revocation_reason(std::string_view name) {
  const std::string n = lower(std::string(name));
  if (n == "unspecified") return RevocationReason::unspecified;
  if (n == "keycompromise") return RevocationReason::key_compromise;
  if (n == "cacompromise") return RevocationReason::ca_compromise;
  if (n == "affiliationchanged") return RevocationReason::affiliation_changed;
  if (n == "superseded") return RevocationReason::superseded;
  if (n == "cessationofoperation") return RevocationReason::cessation_of_operation;
  if (n == "privilegewithdrawn") return RevocationReason::privilege_withdrawn;
  return std::nullopt;
}

std::string openssl_index(const std::vector<IndexEntry>& entries) {
  auto asn1_time = [](std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, tm.tm_year + 1900 >= 2050 ? "%Y%m%d%H%M%SZ" : "%y%m%d%H%M%SZ", &tm);
    return std::string(buf);
  };
  std::string out;
  for (const auto& e : entries) {
    std::string serial = e.serial_hex;
    for (auto& c : serial) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (serial.size() % 2 != 0) serial.insert(0, "0");
    const bool revoked = e.status == CertStatus::revoked;
    std::string reason = revocation_reason_name(e.reason);
    if (e.reason == RevocationReason::ca_compromise) reason = "CACompromise";  // OpenSSL's spelling
    out += revoked ? "R\t" : "V\t";
    out += asn1_time(e.not_after) + '\t';
    if (revoked) out += asn1_time(e.revoked_at) + (e.reason == RevocationReason::unspecified ? "" : "," + reason);
    out += '\t' + serial + "\tunknown\t/" + e.subject + '\n';
  }
  return out;
}

const char* revocation_reason_name(RevocationReason reason) {
  switch (reason) {
    case RevocationReason::unspecified: return "unspecified";
    case RevocationReason::key_compromise: return "keyCompromise";
    case RevocationReason::ca_compromise: return "cACompromise";
    case RevocationReason::affiliation_changed: return "affiliationChanged";
    case RevocationReason::superseded: return "superseded";
    case RevocationReason::cessation_of_operation: return "cessationOfOperation";
    case RevocationReason::privilege_withdrawn: return "privilegeWithdrawn";
  }
  return "unspecified";
}

bool init_ca(const CaInitOptions& o, std::string& error) {
  ERR_clear_error();
  if (o.dir.empty()) {
    error = "--dir is empty";
    return false;
  }
  if (o.key_type == KeyType::rsa_2048) {
    error = "a CA key must be ECDSA P-256 or RSA 3072";
    return false;
  }
  if (o.root_days < 1 || o.root_days > 36500 || o.intermediate_days < 1 || o.intermediate_days > o.root_days) {
    error = "validity out of range: root 1..36500 days, intermediate 1..root days";
    return false;
  }
  if (o.name.empty()) {
    error = "--name is empty";
    return false;
  }
  for (const char* f : {ca_files::root_cert, ca_files::root_key, ca_files::intermediate_key, ca_files::index}) {
    if (file_exists(join_path(o.dir, f))) {
      error = o.dir + " already holds a CA (" + f + " exists); refusing to overwrite it";
      return false;
    }
  }

  const std::time_t now = std::time(nullptr);
  EvpPkeyPtr root_key = generate_key(o.key_type, error);
  if (!root_key) return false;
  EvpPkeyPtr inter_key = generate_key(o.key_type, error);
  if (!inter_key) return false;

  // Root names are short on purpose: O is the office, CN says which CA it is. 64 characters is X.520's limit.
  CaCertSpec root_spec{o.name + " Root CA", o.name, 1, o.root_days, {}};
  X509Ptr root = make_ca_cert(root_spec, root_key.get(), nullptr, root_key.get(), now, error);
  if (!root) return false;
  CaCertSpec inter_spec{o.name + " Issuing CA", o.name, 0, o.intermediate_days, o.name_constraints};
  X509Ptr inter = make_ca_cert(inter_spec, inter_key.get(), root.get(), root_key.get(), now, error);
  if (!inter) return false;

  const std::string root_pem = cert_pem(root.get()), inter_pem = cert_pem(inter.get());
  const std::string root_key_pem = key_pem(root_key.get(), o.passphrase);
  const std::string inter_key_pem = key_pem(inter_key.get(), o.passphrase);
  if (root_pem.empty() || inter_pem.empty() || root_key_pem.empty() || inter_key_pem.empty()) {
    error = openssl_failure("encoding the CA as PEM");
    return false;
  }
  // Directories only once everything is built, so a refused request leaves nothing behind.
  if (!make_directories(o.dir, error) || !make_directories(join_path(o.dir, ca_files::issued_dir), error))
    return false;
  // Keys first and the index last: a directory with an index is a complete CA.
  const struct {
    const char* name;
    const std::string& contents;
    unsigned mode;
  } files[] = {
      {ca_files::root_key, root_key_pem, 0600},
      {ca_files::intermediate_key, inter_key_pem, 0600},
      {ca_files::root_cert, root_pem, 0644},
      {ca_files::intermediate_cert, inter_pem, 0644},
      {ca_files::chain, inter_pem + root_pem, 0644},
  };
  for (const auto& f : files)
    if (!write_file_atomic(join_path(o.dir, f.name), f.contents, f.mode, error)) return false;
  if (!write_file_atomic(join_path(o.dir, ca_files::crl_number), "1\n", 0644, error)) return false;
  return write_index(o.dir, {}, error);
}

std::optional<std::vector<IndexEntry>> read_index(const std::string& dir, std::string& error) {
  const std::string path = join_path(dir, ca_files::index);
  auto text = read_text_file(path, error);
  if (!text) return std::nullopt;
  std::vector<IndexEntry> out;
  std::istringstream in(*text);
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (int i = 0; i < 6; ++i) {
      const auto tab = line.find('\t', start);
      if (tab == std::string::npos) break;
      f.push_back(line.substr(start, tab - start));
      start = tab + 1;
    }
    f.push_back(line.substr(start));
    auto bad = [&](const std::string& what) {
      error = path + ":" + std::to_string(lineno) + ": " + what;
      return std::nullopt;
    };
    if (f.size() != 7) return bad("expected 7 tab-separated fields");
    IndexEntry e;
    if (f[0] == "V") e.status = CertStatus::valid;
    else if (f[0] == "R") e.status = CertStatus::revoked;
    else return bad("status must be V or R, got \"" + f[0] + "\"");
    auto serial = canonical_serial(f[1]);
    if (!serial) return bad("bad serial \"" + f[1] + "\"");
    e.serial_hex = *serial;
    if (f[2] == "client") e.type = CertType::client;
    else if (f[2] == "server") e.type = CertType::server;
    else return bad("type must be client or server");
    auto not_after = parse_utc(f[3]);
    if (!not_after) return bad("bad not_after \"" + f[3] + "\"");
    e.not_after = *not_after;
    if (e.status == CertStatus::revoked) {
      auto at = parse_utc(f[4]);
      auto reason = parse_revocation_reason(f[5]);
      if (!at || !reason) return bad("a revoked entry needs a revocation time and reason");
      e.revoked_at = *at;
      e.reason = *reason;
    }
    e.subject = f[6];
    out.push_back(std::move(e));
  }
  return out;
}

bool revoke_certificate(const std::string& dir, const std::string& serial, RevocationReason reason,
                        std::time_t when, std::string& error) {
  auto canonical = canonical_serial(serial);
  if (!canonical) {
    error = "\"" + serial + "\" is not a serial number (hex, as cert list shows it)";
    return false;
  }
  if (!is_ca_dir(dir)) {
    error = dir + " is not a CA directory (no " + ca_files::intermediate_cert + "/" + ca_files::index + ")";
    return false;
  }
  DirLock lock(dir, error);
  if (!lock.locked()) return false;
  auto entries = read_index(dir, error);
  if (!entries) return false;
  auto it = std::find_if(entries->begin(), entries->end(), [&](const IndexEntry& e) { return e.serial_hex == *canonical; });
  if (it == entries->end()) {
    error = "no certificate with serial " + *canonical + " in " + join_path(dir, ca_files::index);
    return false;
  }
  if (it->status == CertStatus::revoked) {
    error = "certificate " + *canonical + " (" + it->subject + ") was already revoked at " +
            format_utc(it->revoked_at) + " (" + revocation_reason_name(it->reason) + ")";
    return false;
  }
  it->status = CertStatus::revoked;
  it->revoked_at = when;
  it->reason = reason;
  return write_index(dir, *entries, error);
}

// ---- CertificateAuthority ---------------------------------------------------------------------------------

struct CertificateAuthority::Impl {
  std::string dir;
  X509Ptr cert;
  EvpPkeyPtr key;
};

CertificateAuthority::CertificateAuthority(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CertificateAuthority::~CertificateAuthority() = default;
X509* CertificateAuthority::intermediate() const noexcept { return impl_->cert.get(); }

std::unique_ptr<CertificateAuthority> CertificateAuthority::open(const std::string& dir, const Passphrase* passphrase,
                                                                 std::string& error) {
  ERR_clear_error();
  if (!is_ca_dir(dir)) {
    error = dir + " is not a CA directory (no " + ca_files::intermediate_cert + "/" + ca_files::index +
            "); create one with gerbangctl ca init";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->cert = load_cert_file(join_path(dir, ca_files::intermediate_cert), error);
  if (!impl->cert) return nullptr;
  impl->key = load_key_file(join_path(dir, ca_files::intermediate_key), passphrase, error);
  if (!impl->key) return nullptr;
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    error = openssl_failure(join_path(dir, ca_files::intermediate_key) + " does not match " +
                            join_path(dir, ca_files::intermediate_cert));
    return nullptr;
  }
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(std::move(impl)));
}

std::unique_ptr<IssuedLeaf> CertificateAuthority::issue(const LeafRequest& r, std::string& error) {
  ERR_clear_error();
  if (r.name.empty() || r.name.size() > 64 ||
      r.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos ||
      r.name[0] == '.') {
    error = "--name must match [A-Za-z0-9._-]{1,64} (it is the CN and the file name), got \"" + r.name + "\"";
    return nullptr;
  }
  constexpr long long limit = 100LL * 366 * 86400;
  if (r.validity.count() <= 0 || r.validity.count() > limit || r.not_before_offset.count() < -limit ||
      r.not_before_offset.count() > limit) {
    error = "certificate validity out of range";
    return nullptr;
  }
  bool has_host = false;
  for (const auto& s : r.sans) {
    const std::string k = lower(s.substr(0, s.find(':')));
    has_host = has_host || k == "dns" || k == "ip" || k == "ipaddress";
  }
  if (r.type == CertType::server && !has_host) {
    error = "a server certificate needs at least one DNS: or IP: subjectAltName (--san)";
    return nullptr;
  }

  const std::time_t now = std::time(nullptr);
  const std::time_t not_before = now + r.not_before_offset.count();
  const std::time_t not_after = not_before + r.validity.count();
  const std::time_t ca_not_after = asn1_to_time(X509_get0_notAfter(impl_->cert.get()));
  if (not_after > ca_not_after) {
    error = "the certificate would outlive the issuing CA (valid until " + format_utc(ca_not_after) +
            "); use fewer --days";
    return nullptr;
  }

  auto leaf = std::make_unique<IssuedLeaf>();
  leaf->key = generate_key(r.key_type, error);
  if (!leaf->key) return nullptr;
  leaf->cert.reset(X509_new());
  X509* cert = leaf->cert.get();
  if (!cert || X509_set_version(cert, X509_VERSION_3) != 1 || X509_set_pubkey(cert, leaf->key.get()) != 1 ||
      X509_set_issuer_name(cert, X509_get_subject_name(impl_->cert.get())) != 1) {
    error = openssl_failure("building the certificate");
    return nullptr;
  }
  if (!set_validity(cert, not_before, not_after, error)) return nullptr;
  X509_NAME* subject = X509_get_subject_name(cert);
  const X509_NAME* ca_subject = X509_get_subject_name(impl_->cert.get());
  const int org_index = X509_NAME_get_index_by_NID(ca_subject, NID_organizationName, -1);
  if (org_index >= 0) {
    const X509_NAME_ENTRY* org = X509_NAME_get_entry(ca_subject, org_index);
    if (X509_NAME_add_entry(subject, org, -1, 0) != 1) {
      error = openssl_failure("setting subject O");
      return nullptr;
    }
  }
  if (!add_name_entry(subject, "OU", r.ou, error) || !add_name_entry(subject, "CN", r.name, error)) return nullptr;
  const bool server = r.type == CertType::server;
  const bool rsa = EVP_PKEY_is_a(leaf->key.get(), "RSA") == 1;
  // keyEncipherment only matters for RSA key transport (TLS 1.2 RSA kx on a server); harmless on RSA clients.
  const char* ku = rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature";
  if (!add_conf_ext(cert, impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE", error) ||
      !add_conf_ext(cert, impl_->cert.get(), NID_key_usage, ku, error) ||
      !add_conf_ext(cert, impl_->cert.get(), NID_ext_key_usage, server ? "serverAuth" : "clientAuth", error) ||
      !add_conf_ext(cert, impl_->cert.get(), NID_subject_key_identifier, "hash", error) ||
      !add_conf_ext(cert, impl_->cert.get(), NID_authority_key_identifier, "keyid:always", error) ||
      !add_subject_alt_names(cert, r.sans, error))
    return nullptr;
  if (!r.ocsp_url.empty()) {
    // Plain HTTP only (RFC 6960 A.1), and no characters that would change the extension's config syntax.
    const bool clean = r.ocsp_url.size() > 7 && r.ocsp_url.find_first_of(", \t\r\n") == std::string::npos;
    if (r.ocsp_url.rfind("http://", 0) != 0 || !clean) {
      error = "--ocsp-url must be an http:// URL without spaces or commas, got \"" + r.ocsp_url + "\"";
      return nullptr;
    }
    if (!add_conf_ext(cert, impl_->cert.get(), NID_info_access, ("OCSP;URI:" + r.ocsp_url).c_str(), error))
      return nullptr;
  }

  DirLock lock(impl_->dir, error);
  if (!lock.locked()) return nullptr;
  auto entries = read_index(impl_->dir, error);
  if (!entries) return nullptr;
  // A 128-bit collision is practically impossible, but the index is the place to make sure.
  for (int attempt = 0;; ++attempt) {
    Asn1IntegerPtr serial = random_serial(error);
    if (!serial) return nullptr;
    leaf->serial_hex = serial_to_hex(serial.get());
    const bool taken = std::any_of(entries->begin(), entries->end(),
                                   [&](const IndexEntry& e) { return e.serial_hex == leaf->serial_hex; });
    if (!taken) {
      if (X509_set_serialNumber(cert, serial.get()) != 1) {
        error = openssl_failure("setting the serial number");
        return nullptr;
      }
      break;
    }
    if (attempt > 8) {
      error = "cannot find a free serial number";
      return nullptr;
    }
  }
  if (X509_sign(cert, impl_->key.get(), EVP_sha256()) <= 0) {
    error = openssl_failure("signing the certificate");
    return nullptr;
  }
  leaf->issuer.reset(X509_dup(impl_->cert.get()));
  leaf->subject = name_to_string(X509_get_subject_name(cert));
  leaf->cert_pem = cert_pem(cert);
  const std::string issuer_pem = cert_pem(impl_->cert.get());
  if (!leaf->issuer || leaf->cert_pem.empty() || issuer_pem.empty()) {
    error = openssl_failure("encoding the certificate");
    return nullptr;
  }
  leaf->chain_pem = leaf->cert_pem + issuer_pem;

  if (!write_file_atomic(join_path(join_path(impl_->dir, ca_files::issued_dir), leaf->serial_hex + ".pem"),
                         leaf->cert_pem, 0644, error))
    return nullptr;
  IndexEntry entry;
  entry.serial_hex = leaf->serial_hex;
  entry.type = r.type;
  entry.not_after = not_after;
  entry.subject = leaf->subject;
  entries->push_back(std::move(entry));
  if (!write_index(impl_->dir, *entries, error)) return nullptr;
  return leaf;
}

std::optional<std::string> CertificateAuthority::make_crl(std::chrono::seconds validity, std::string& error) {
  ERR_clear_error();
  if (validity.count() <= 0 || validity.count() > 366LL * 86400) {
    error = "CRL validity must be between 1 second and 366 days";
    return std::nullopt;
  }
  DirLock lock(impl_->dir, error);
  if (!lock.locked()) return std::nullopt;
  auto entries = read_index(impl_->dir, error);
  if (!entries) return std::nullopt;
  const std::string number_path = join_path(impl_->dir, ca_files::crl_number);
  auto number_text = read_text_file(number_path, error);
  if (!number_text) return std::nullopt;
  while (!number_text->empty() && std::isspace(static_cast<unsigned char>(number_text->back()))) number_text->pop_back();
  if (number_text->empty() || number_text->size() > 18 ||
      number_text->find_first_not_of("0123456789") != std::string::npos) {
    error = number_path + " must hold a decimal CRL number";
    return std::nullopt;
  }
  const long long number = std::stoll(*number_text);

  const std::time_t now = std::time(nullptr);
  X509CrlPtr crl(X509_CRL_new());
  Asn1TimePtr last(ASN1_TIME_set(nullptr, now));
  Asn1TimePtr next(ASN1_TIME_set(nullptr, now + validity.count()));
  if (!crl || !last || !next || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(impl_->cert.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 || X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    error = openssl_failure("building the CRL");
    return std::nullopt;
  }
  for (const auto& e : *entries) {
    if (e.status != CertStatus::revoked) continue;
    X509RevokedPtr rev(X509_REVOKED_new());
    BIGNUM* raw = nullptr;
    BN_hex2bn(&raw, e.serial_hex.c_str());
    BignumPtr bn(raw);
    Asn1IntegerPtr serial(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
    Asn1TimePtr when(ASN1_TIME_set(nullptr, e.revoked_at));
    if (!rev || !serial || !when || X509_REVOKED_set_serialNumber(rev.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(rev.get(), when.get()) != 1) {
      error = openssl_failure("adding serial " + e.serial_hex + " to the CRL");
      return std::nullopt;
    }
    // RFC 5280 §5.3.1: reasonCode unspecified SHOULD be absent.
    if (e.reason != RevocationReason::unspecified) {
      Asn1EnumeratedPtr code(ASN1_ENUMERATED_new());
      if (!code || ASN1_ENUMERATED_set(code.get(), static_cast<long>(e.reason)) != 1 ||
          X509_REVOKED_add1_ext_i2d(rev.get(), NID_crl_reason, code.get(), 0, 0) != 1) {
        error = openssl_failure("adding the reason code for " + e.serial_hex);
        return std::nullopt;
      }
    }
    if (X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) {
      error = openssl_failure("adding serial " + e.serial_hex + " to the CRL");
      return std::nullopt;
    }
    rev.release();
  }
  X509_CRL_sort(crl.get());

  Asn1IntegerPtr crl_number(ASN1_INTEGER_new());
  if (!crl_number || ASN1_INTEGER_set_int64(crl_number.get(), number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, crl_number.get(), 0, 0) != 1) {
    error = openssl_failure("adding the CRL number");
    return std::nullopt;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, impl_->cert.get(), nullptr, nullptr, crl.get(), 0);
  X509ExtensionPtr akid(X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!akid || X509_CRL_add_ext(crl.get(), akid.get(), -1) != 1) {
    error = openssl_failure("adding the CRL's authorityKeyIdentifier");
    return std::nullopt;
  }
  if (X509_CRL_sign(crl.get(), impl_->key.get(), EVP_sha256()) <= 0) {
    error = openssl_failure("signing the CRL");
    return std::nullopt;
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) {
    error = openssl_failure("encoding the CRL");
    return std::nullopt;
  }
  // The number is spent even if the caller fails to publish this CRL: CRL numbers only ever grow.
  if (!write_file_atomic(number_path, std::to_string(number + 1) + "\n", 0644, error)) return std::nullopt;
  return bio_to_string(bio.get());
}

// ---- output files -----------------------------------------------------------------------------------------

std::optional<std::string> make_pkcs12(const IssuedLeaf& leaf, const Passphrase& pass, std::string& error) {
  ERR_clear_error();
  X509StackPtr ca(sk_X509_new_null());
  if (!ca || !leaf.issuer || sk_X509_push(ca.get(), X509_dup(leaf.issuer.get())) <= 0) {
    error = openssl_failure("building the PKCS#12 chain");
    return std::nullopt;
  }
  // PKCS12_create wants a NUL-terminated password; copy it into a sodium_malloc buffer, not a std::string.
  crypto::SecretBytes<Passphrase::max_size + 1> pw;
  std::memcpy(pw.data(), pass.data(), pass.size());
  const char* password = reinterpret_cast<const char*>(pw.data());
  // Algorithms set explicitly (PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256; HMAC-SHA256 MAC) so the bundle
  // does not depend on the library's defaults (older ones used RC2/3DES and a SHA-1 MAC). mac_iter -1 = no MAC
  // yet; it is added below with the digest named.
  Pkcs12Ptr p12(PKCS12_create(password, nullptr, leaf.key.get(), leaf.cert.get(), ca.get(), NID_aes_256_cbc,
                              NID_aes_256_cbc, pkcs12_iterations, -1, 0));
  if (!p12 || PKCS12_set_mac(p12.get(), password, -1, nullptr, 0, pkcs12_iterations, EVP_sha256()) != 1) {
    error = openssl_failure("creating the PKCS#12 bundle");
    return std::nullopt;
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || i2d_PKCS12_bio(bio.get(), p12.get()) != 1) {
    error = openssl_failure("encoding the PKCS#12 bundle");
    return std::nullopt;
  }
  return bio_to_string(bio.get());
}

bool leaf_files_exist(const std::string& out_dir, const std::string& name, bool p12, std::string& error) {
  for (const std::string& f : {name + ".key", p12 ? name + ".p12" : std::string()}) {
    if (!f.empty() && file_exists(join_path(out_dir, f))) {
      error = join_path(out_dir, f) + " already exists; refusing to overwrite a private key";
      return true;
    }
  }
  return false;
}

std::optional<LeafFiles> write_leaf_files(const IssuedLeaf& leaf, const std::string& out_dir, const std::string& name,
                                          const Passphrase* p12_passphrase, std::string& error) {
  if (leaf_files_exist(out_dir, name, p12_passphrase != nullptr, error)) return std::nullopt;
  if (!make_directories(out_dir, error)) return std::nullopt;
  LeafFiles files{join_path(out_dir, name + ".key"), join_path(out_dir, name + ".pem"),
                  join_path(out_dir, name + "-chain.pem"), {}};
  const std::string key = key_pem(leaf.key.get(), nullptr);
  if (key.empty()) {
    error = openssl_failure("encoding the private key");
    return std::nullopt;
  }
  // Key first: a certificate on disk without its key is a confusing half-result.
  if (!write_file_atomic(files.key, key, 0600, error) || !write_file_atomic(files.cert, leaf.cert_pem, 0644, error) ||
      !write_file_atomic(files.chain, leaf.chain_pem, 0644, error))
    return std::nullopt;
  if (p12_passphrase != nullptr) {
    auto der = make_pkcs12(leaf, *p12_passphrase, error);
    if (!der) return std::nullopt;
    files.p12 = join_path(out_dir, name + ".p12");
    if (!write_file_atomic(files.p12, *der, 0600, error)) return std::nullopt;
  }
  return files;
}

// ---- helpers for the gateway ------------------------------------------------------------------------------

std::vector<CertExpiry> certificate_expiries(const std::string& pem_file) {
  std::string error;
  return certificate_expiries(pem_file, std::time(nullptr), error);
}

std::vector<CertExpiry> certificate_expiries(const std::string& pem_file, std::time_t now, std::string& error) {
  auto certs = load_cert_bundle(pem_file, error);
  if (!certs) return {};
  std::vector<CertExpiry> out;
  for (const auto& c : *certs) {
    CertExpiry e;
    e.subject = name_to_string(X509_get_subject_name(c.get()));
    e.not_after = asn1_to_time(X509_get0_notAfter(c.get()));
    e.seconds_left = static_cast<long long>(e.not_after) - static_cast<long long>(now);
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<LoadedCrl> load_crl_file(const std::string& crl_file, const std::string& ca_file, std::time_t now,
                                       std::string& error) {
  ERR_clear_error();
  auto data = read_text_file(crl_file, error);
  if (!data) return std::nullopt;
  LoadedCrl out;
  {
    BioPtr bio = memory_bio(*data);
    out.crl.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!out.crl) {  // not PEM: try DER
    ERR_clear_error();
    BioPtr bio = memory_bio(*data);
    out.crl.reset(d2i_X509_CRL_bio(bio.get(), nullptr));
  }
  if (!out.crl) {
    error = openssl_failure(crl_file + " is not a CRL (PEM or DER)");
    return std::nullopt;
  }
  X509_CRL* crl = out.crl.get();
  out.info.issuer = name_to_string(X509_CRL_get_issuer(crl));
  out.info.last_update = asn1_to_time(X509_CRL_get0_lastUpdate(crl));
  out.info.next_update = X509_CRL_get0_nextUpdate(crl) != nullptr ? asn1_to_time(X509_CRL_get0_nextUpdate(crl)) : 0;
  const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  out.info.revoked = revoked != nullptr ? static_cast<std::size_t>(sk_X509_REVOKED_num(revoked)) : 0;
  Asn1IntegerPtr number(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)));
  if (number) {
    BignumPtr bn(ASN1_INTEGER_to_BN(number.get(), nullptr));
    if (char* dec = bn ? BN_bn2dec(bn.get()) : nullptr) {
      out.info.crl_number = dec;
      OPENSSL_free(dec);
    }
  }
  ERR_clear_error();

  auto cas = load_cert_bundle(ca_file, error);
  if (!cas) return std::nullopt;
  X509* issuer = nullptr;
  for (const auto& c : *cas)
    if (X509_NAME_cmp(X509_get_subject_name(c.get()), X509_CRL_get_issuer(crl)) == 0) issuer = c.get();
  if (issuer == nullptr) {
    error = crl_file + ": the CRL's issuer " + out.info.issuer + " is not among the CA certificates in " + ca_file;
    return std::nullopt;
  }
  EVP_PKEY* issuer_key = X509_get0_pubkey(issuer);
  if (issuer_key == nullptr || X509_CRL_verify(crl, issuer_key) != 1) {
    error = openssl_failure(crl_file + ": the CRL's signature does not verify with the key of " + out.info.issuer +
                            " from " + ca_file);
    return std::nullopt;
  }
  if (out.info.last_update == 0 || out.info.last_update > now + clock_skew_seconds) {
    error = crl_file + ": the CRL's lastUpdate (" + format_utc(out.info.last_update) + ") is in the future";
    return std::nullopt;
  }
  if (out.info.next_update == 0) {
    error = crl_file + ": the CRL has no nextUpdate; gerbang needs one to know when it is stale";
    return std::nullopt;
  }
  if (out.info.next_update <= now) {
    error = crl_file + ": the CRL expired at " + format_utc(out.info.next_update) +
            " (its nextUpdate); publish a new one (gerbangctl crl)";
    return std::nullopt;
  }
  return out;
}

}  // namespace gerbang::certs
