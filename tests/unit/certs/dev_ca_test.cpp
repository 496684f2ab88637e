#include "certs/dev_ca.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/keys.hpp"
#include "crypto/openssl.hpp"

namespace gerbang::certs {
namespace {

using namespace gerbang::crypto;
using namespace std::chrono_literals;

X509Ptr parse_cert(const std::string& pem) {
  BioPtr bio = memory_bio(pem);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<X509Ptr> parse_all(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = memory_bio(pem);
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();  // the final read fails with "no start line" at end of input
  return out;
}

EvpPkeyPtr parse_key(const std::string& pem) {
  BioPtr bio = memory_bio(pem);
  return EvpPkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// X509_verify_cert of `leaf` against a store holding only `ca_pem`; returns X509_V_OK or the error.
int verify(const std::string& leaf_pem, const std::string& ca_pem, int purpose = 0) {
  X509Ptr leaf = parse_cert(leaf_pem);
  X509Ptr ca = parse_cert(ca_pem);
  if (!leaf || !ca) return -1;
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1) return -1;
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) != 1) return -1;
  if (purpose != 0 && X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1) return -1;
  if (X509_verify_cert(ctx.get()) == 1) return X509_V_OK;
  ERR_clear_error();
  return X509_STORE_CTX_get_error(ctx.get());
}

std::string subject_field(X509* cert, int nid) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

// All SAN entries as "DNS:x", "IP:x", "URI:x", "email:x".
std::set<std::string> sans(X509* cert) {
  std::set<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    auto str = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
    };
    switch (gn->type) {
      case GEN_DNS: out.insert("DNS:" + str(gn->d.dNSName)); break;
      case GEN_URI: out.insert("URI:" + str(gn->d.uniformResourceIdentifier)); break;
      case GEN_EMAIL: out.insert("email:" + str(gn->d.rfc822Name)); break;
      case GEN_IPADD: {
        BioPtr bio(BIO_new(BIO_s_mem()));
        GENERAL_NAME_print(bio.get(), const_cast<GENERAL_NAME*>(gn));
        std::string s = bio_to_string(bio.get());  // "IP Address:127.0.0.1"
        out.insert("IP:" + s.substr(s.find(':') + 1));
        break;
      }
      default: out.insert("other"); break;
    }
  }
  return out;
}

bool extension_critical(X509* cert, int nid) {
  const int i = X509_get_ext_by_NID(cert, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

// Seconds from now to `t` (negative: in the past).
long seconds_from_now(const ASN1_TIME* t) {
  int days = 0, secs = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, t), 1);
  return days * 86400L + secs;
}

class DevCaTest : public ::testing::Test {
 protected:
  // Key generation is the slow part; one CA serves the whole suite.
  static void SetUpTestSuite() {
    std::string error;
    ca_ = DevCa::create("gerbang test CA", KeyType::ecdsa_p256, error);
    ASSERT_NE(ca_, nullptr) << error;
  }
  static void TearDownTestSuite() { ca_.reset(); }

  static IssueOptions server_options() {
    IssueOptions o;
    o.common_name = "api.test";
    o.dns_names = {"api.test", "localhost"};
    o.ip_addresses = {"127.0.0.1", "::1"};
    return o;
  }

  static std::unique_ptr<DevCa> ca_;
};
std::unique_ptr<DevCa> DevCaTest::ca_;

TEST_F(DevCaTest, CreatesASelfSignedRootCa) {
  X509Ptr ca = parse_cert(ca_->cert_pem());
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(subject_field(ca.get(), NID_commonName), "gerbang test CA");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_get_issuer_name(ca.get())), 0);
  EXPECT_TRUE(extension_critical(ca.get(), NID_basic_constraints));
  EXPECT_TRUE(extension_critical(ca.get(), NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(ca.get()), nullptr);
  EXPECT_EQ(X509_get_signature_nid(ca.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(verify(ca_->cert_pem(), ca_->cert_pem()), X509_V_OK);
  EXPECT_LT(seconds_from_now(X509_get0_notBefore(ca.get())), 0);
  EXPECT_GT(seconds_from_now(X509_get0_notAfter(ca.get())), 365L * 86400);

  EvpPkeyPtr key = parse_key(ca_->key_pem());
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(ca.get(), key.get()), 1);
  EXPECT_NE(ca_->key_pem().find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
}

TEST_F(DevCaTest, IssuesAVerifiableEcdsaServerCertificate) {
  std::string error;
  auto issued = ca_->issue_server(server_options(), error);
  ASSERT_NE(issued, nullptr) << error;
  X509Ptr leaf = parse_cert(issued->cert_pem);
  ASSERT_TRUE(leaf);

  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  // serverAuth only: the same certificate is no good as a client certificate.
  EXPECT_NE(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);

  EXPECT_EQ(sans(leaf.get()), (std::set<std::string>{"DNS:api.test", "DNS:localhost", "IP:127.0.0.1", "IP:0:0:0:0:0:0:0:1"}));
  EXPECT_EQ(X509_check_host(leaf.get(), "api.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "other.test", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "10.0.0.1", 0), 0);

  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_TRUE(extension_critical(leaf.get(), NID_basic_constraints));
  EXPECT_TRUE(extension_critical(leaf.get(), NID_key_usage));
  EXPECT_FALSE(extension_critical(leaf.get(), NID_subject_alt_name));  // the subject is not empty
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));  // no keyEncipherment for EC
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_signature_nid(leaf.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(subject_field(leaf.get(), NID_commonName), "api.test");

  // The AKID names the CA's SKID.
  X509Ptr ca = parse_cert(ca_->cert_pem());
  const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(leaf.get());
  ASSERT_NE(akid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(ca.get())), 0);
  EXPECT_NE(X509_get0_subject_key_id(leaf.get()), nullptr);

  EvpPkeyPtr key = parse_key(issued->key_pem);
  ASSERT_TRUE(key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(X509_check_private_key(leaf.get(), key.get()), 1);
  EXPECT_NE(issued->key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);  // PKCS#8
}

TEST_F(DevCaTest, RsaServerCertificateAlsoAllowsKeyEncipherment) {
  std::string error;
  IssueOptions o = server_options();
  o.key_type = KeyType::rsa_2048;
  auto issued = ca_->issue_server(o, error);
  ASSERT_NE(issued, nullptr) << error;
  X509Ptr leaf = parse_cert(issued->cert_pem);
  EvpPkeyPtr key = parse_key(issued->key_pem);
  ASSERT_TRUE(leaf && key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "RSA"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 2048);
  EXPECT_EQ(X509_check_private_key(leaf.get(), key.get()), 1);
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
}

TEST_F(DevCaTest, IssuesAVerifiableClientCertificate) {
  std::string error;
  IssueOptions o;
  o.common_name = "alice";
  o.organization = "Example Corp";
  o.organizational_unit = "payments";
  o.uris = {"spiffe://example/alice"};
  o.emails = {"alice@example.test"};
  auto issued = ca_->issue_client(o, error);
  ASSERT_NE(issued, nullptr) << error;
  X509Ptr leaf = parse_cert(issued->cert_pem);
  ASSERT_TRUE(leaf);

  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_NE(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(subject_field(leaf.get(), NID_commonName), "alice");
  EXPECT_EQ(subject_field(leaf.get(), NID_organizationName), "Example Corp");
  EXPECT_EQ(subject_field(leaf.get(), NID_organizationalUnitName), "payments");
  EXPECT_EQ(sans(leaf.get()), (std::set<std::string>{"URI:spiffe://example/alice", "email:alice@example.test"}));
}

TEST_F(DevCaTest, ReportsSerialFingerprintAndChain) {
  std::string error;
  auto a = ca_->issue_server(server_options(), error);
  auto b = ca_->issue_server(server_options(), error);
  ASSERT_TRUE(a && b) << error;
  EXPECT_NE(a->serial_hex, b->serial_hex);
  EXPECT_NE(a->sha256_fingerprint, b->sha256_fingerprint);

  X509Ptr leaf = parse_cert(a->cert_pem);
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr));
  ASSERT_TRUE(serial);
  EXPECT_FALSE(BN_is_negative(serial.get()));
  EXPECT_FALSE(BN_is_zero(serial.get()));
  EXPECT_LE(BN_num_bits(serial.get()), 128);
  char* hex = BN_bn2hex(serial.get());
  std::string expected = hex;
  OPENSSL_free(hex);
  std::transform(expected.begin(), expected.end(), expected.begin(), ::tolower);
  EXPECT_EQ(a->serial_hex, expected);

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ASSERT_EQ(X509_digest(leaf.get(), EVP_sha256(), md, &n), 1);
  ASSERT_EQ(n, 32U);
  std::string fp;
  for (unsigned i = 0; i < n; ++i) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    fp += buf;
  }
  EXPECT_EQ(a->sha256_fingerprint, fp);

  EXPECT_EQ(a->chain_pem, a->cert_pem + ca_->cert_pem());
  auto chain = parse_all(a->chain_pem);
  ASSERT_EQ(chain.size(), 2U);
  EXPECT_EQ(X509_cmp(chain[0].get(), leaf.get()), 0);
  EXPECT_EQ(X509_check_ca(chain[1].get()), 1);
}

TEST_F(DevCaTest, SerialsAreRandomAcrossManyCertificates) {
  std::set<std::string> serials;
  std::string error;
  IssueOptions o;
  o.common_name = "x";
  for (int i = 0; i < 20; ++i) {
    auto issued = ca_->issue_client(o, error);
    ASSERT_NE(issued, nullptr) << error;
    serials.insert(issued->serial_hex);
  }
  EXPECT_EQ(serials.size(), 20U);
}

TEST_F(DevCaTest, ValidityWindowFollowsTheOptions) {
  std::string error;
  IssueOptions o = server_options();
  o.not_before_offset = -1h;
  o.validity = 48h;
  auto issued = ca_->issue_server(o, error);
  ASSERT_NE(issued, nullptr) << error;
  X509Ptr leaf = parse_cert(issued->cert_pem);
  const long nb = seconds_from_now(X509_get0_notBefore(leaf.get()));
  const long na = seconds_from_now(X509_get0_notAfter(leaf.get()));
  EXPECT_NEAR(nb, -3600, 5);
  EXPECT_NEAR(na, 47 * 3600, 5);

  // The defaults: five minutes of clock-skew slack, 90 days.
  auto d = ca_->issue_server(server_options(), error);
  ASSERT_NE(d, nullptr) << error;
  X509Ptr dl = parse_cert(d->cert_pem);
  EXPECT_NEAR(seconds_from_now(X509_get0_notBefore(dl.get())), -300, 5);
  EXPECT_NEAR(seconds_from_now(X509_get0_notAfter(dl.get())), 90L * 86400 - 300, 5);
}

TEST_F(DevCaTest, ExpiredCertificateFailsVerification) {
  std::string error;
  IssueOptions o = server_options();
  o.not_before_offset = -48h;
  o.validity = 1h;
  auto issued = ca_->issue_server(o, error);
  ASSERT_NE(issued, nullptr) << error;
  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem()), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(DevCaTest, NotYetValidCertificateFailsVerification) {
  std::string error;
  IssueOptions o = server_options();
  o.not_before_offset = 24h;
  auto issued = ca_->issue_client(o, error);
  ASSERT_NE(issued, nullptr) << error;
  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem()), X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST_F(DevCaTest, CertificateFromAnotherCaFailsVerification) {
  std::string error;
  auto other = DevCa::create("gerbang test CA", KeyType::ecdsa_p256, error);  // same name, different key
  ASSERT_NE(other, nullptr) << error;
  auto issued = other->issue_server(server_options(), error);
  ASSERT_NE(issued, nullptr) << error;
  EXPECT_EQ(verify(issued->cert_pem, other->cert_pem()), X509_V_OK);
  const int err = verify(issued->cert_pem, ca_->cert_pem());
  EXPECT_TRUE(err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_CERT_SIGNATURE_FAILURE)
      << X509_verify_cert_error_string(err);
}

TEST_F(DevCaTest, RsaCaIssuesEcdsaAndRsaLeaves) {
  std::string error;
  auto rsa_ca = DevCa::create("rsa CA", KeyType::rsa_2048, error);
  ASSERT_NE(rsa_ca, nullptr) << error;
  X509Ptr ca = parse_cert(rsa_ca->cert_pem());
  EXPECT_EQ(X509_get_signature_nid(ca.get()), NID_sha256WithRSAEncryption);
  auto ec_leaf = rsa_ca->issue_server(server_options(), error);
  ASSERT_NE(ec_leaf, nullptr) << error;
  EXPECT_EQ(verify(ec_leaf->cert_pem, rsa_ca->cert_pem(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  X509Ptr leaf = parse_cert(ec_leaf->cert_pem);
  EXPECT_EQ(X509_get_signature_nid(leaf.get()), NID_sha256WithRSAEncryption);
}

TEST_F(DevCaTest, LoadRoundTripsAndKeepsIssuing) {
  std::string error;
  auto loaded = DevCa::load(ca_->cert_pem(), ca_->key_pem(), error);
  ASSERT_NE(loaded, nullptr) << error;
  EXPECT_EQ(loaded->cert_pem(), ca_->cert_pem());
  EvpPkeyPtr k1 = parse_key(loaded->key_pem());
  EvpPkeyPtr k2 = parse_key(ca_->key_pem());
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(EVP_PKEY_eq(k1.get(), k2.get()), 1);
  IssueOptions bob;
  bob.common_name = "bob";
  auto issued = loaded->issue_client(bob, error);
  ASSERT_NE(issued, nullptr) << error;
  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(issued->chain_pem, issued->cert_pem + ca_->cert_pem());
}

TEST_F(DevCaTest, LoadRejectsBadInput) {
  std::string error;
  EXPECT_EQ(DevCa::load("garbage", ca_->key_pem(), error), nullptr);
  EXPECT_NE(error.find("CA certificate"), std::string::npos) << error;

  error.clear();
  EXPECT_EQ(DevCa::load(ca_->cert_pem(), "garbage", error), nullptr);
  EXPECT_NE(error.find("private key"), std::string::npos) << error;

  auto other = DevCa::create("other", KeyType::ecdsa_p256, error);
  ASSERT_NE(other, nullptr);
  error.clear();
  EXPECT_EQ(DevCa::load(ca_->cert_pem(), other->key_pem(), error), nullptr);
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;

  // A leaf with its own key is not a CA.
  auto leaf = ca_->issue_server(server_options(), error);
  ASSERT_NE(leaf, nullptr);
  error.clear();
  EXPECT_EQ(DevCa::load(leaf->cert_pem, leaf->key_pem, error), nullptr);
  EXPECT_NE(error.find("not a CA"), std::string::npos) << error;

  // An encrypted key fails instead of prompting on the terminal for a passphrase.
  EvpPkeyPtr key = parse_key(ca_->key_pem());
  BioPtr bio(BIO_new(BIO_s_mem()));
  static const char pass[] = "secret";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), pass, sizeof pass - 1, nullptr,
                                          nullptr),
            1);
  error.clear();
  EXPECT_EQ(DevCa::load(ca_->cert_pem(), bio_to_string(bio.get()), error), nullptr);
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(ERR_peek_error(), 0UL);  // the failure drained the queue into `error`
}

TEST_F(DevCaTest, IssueRejectsBadNames) {
  std::string error;
  IssueOptions o = server_options();
  o.ip_addresses = {"300.1.1.1"};
  EXPECT_EQ(ca_->issue_server(o, error), nullptr);
  EXPECT_NE(error.find("300.1.1.1"), std::string::npos) << error;

  o = server_options();
  o.dns_names.push_back("");
  error.clear();
  EXPECT_EQ(ca_->issue_server(o, error), nullptr);
  EXPECT_FALSE(error.empty());

  error.clear();
  EXPECT_EQ(ca_->issue_client(IssueOptions{}, error), nullptr);
  EXPECT_FALSE(error.empty());

  o = server_options();
  o.validity = 0s;
  error.clear();
  EXPECT_EQ(ca_->issue_server(o, error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST_F(DevCaTest, EmptySubjectMakesSubjectAltNameCritical) {
  std::string error;
  IssueOptions o;
  o.uris = {"spiffe://example/nameless"};
  auto issued = ca_->issue_client(o, error);
  ASSERT_NE(issued, nullptr) << error;
  X509Ptr leaf = parse_cert(issued->cert_pem);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf.get())), 0);
  EXPECT_TRUE(extension_critical(leaf.get(), NID_subject_alt_name));
  EXPECT_EQ(verify(issued->cert_pem, ca_->cert_pem(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gerbang-devca-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

using WriteFileAtomic = TempDir;

TEST_F(WriteFileAtomic, WritesContentsWithExactModeRegardlessOfUmask) {
  const mode_t old = ::umask(0);  // the most permissive umask must not widen a key's mode
  std::string error;
  ASSERT_TRUE(write_file_atomic(dir_ + "/k.key", "secret", 0600, error)) << error;
  ASSERT_TRUE(write_file_atomic(dir_ + "/c.pem", "cert", 0644, error)) << error;
  ::umask(077);  // and the most restrictive must not narrow a certificate's
  ASSERT_TRUE(write_file_atomic(dir_ + "/d.pem", "cert", 0644, error)) << error;
  ::umask(old);
  EXPECT_EQ(read_file(dir_ + "/k.key"), "secret");
  EXPECT_EQ(file_mode(dir_ + "/k.key"), 0600U);
  EXPECT_EQ(file_mode(dir_ + "/c.pem"), 0644U);
  EXPECT_EQ(file_mode(dir_ + "/d.pem"), 0644U);
}

TEST_F(WriteFileAtomic, ReplacesAnExistingFileAndLeavesNoTemporaries) {
  std::string error;
  const std::string path = dir_ + "/f";
  ASSERT_TRUE(write_file_atomic(path, "old contents that are longer", 0644, error)) << error;
  ASSERT_TRUE(write_file_atomic(path, "new", 0600, error)) << error;
  EXPECT_EQ(read_file(path), "new");
  EXPECT_EQ(file_mode(path), 0600U);
  ASSERT_TRUE(write_file_atomic(dir_ + "/empty", "", 0600, error)) << error;
  EXPECT_EQ(read_file(dir_ + "/empty"), "");
  int count = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++count;
  EXPECT_EQ(count, 2);
}

TEST_F(WriteFileAtomic, FailsWithAClearErrorInAMissingDirectory) {
  std::string error;
  EXPECT_FALSE(write_file_atomic(dir_ + "/missing/f", "x", 0600, error));
  EXPECT_NE(error.find(dir_ + "/missing/f"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(write_file_atomic("", "x", 0600, error));
  EXPECT_FALSE(error.empty());
}

using MakeDemoPki = TempDir;

TEST_F(MakeDemoPki, WritesAVerifiablePkiWithSafeModes) {
  const std::string out = dir_ + "/nested/pki";
  std::string error;
  ASSERT_TRUE(make_demo_pki(out, {"gateway.test", "localhost"}, error)) << error;
  EXPECT_EQ(file_mode(out), 0700U);

  for (const char* key : {"ca.key", "server-ecdsa.key", "server-rsa.key", "client.key"}) {
    EXPECT_EQ(file_mode(out + "/" + key), 0600U) << key;
    EXPECT_EQ(crypto::private_key_file_problem(out + "/" + key), std::nullopt) << key;
  }
  for (const char* cert : {"ca.pem", "server-ecdsa.pem", "server-rsa.pem", "client.pem"})
    EXPECT_EQ(file_mode(out + "/" + cert), 0644U) << cert;

  const std::string ca_pem = read_file(out + "/ca.pem");
  std::string loaded_error;
  EXPECT_NE(DevCa::load(ca_pem, read_file(out + "/ca.key"), loaded_error), nullptr) << loaded_error;

  for (const char* name : {"server-ecdsa", "server-rsa"}) {
    const std::string chain_pem = read_file(out + "/" + name + ".pem");
    auto chain = parse_all(chain_pem);
    ASSERT_EQ(chain.size(), 2U) << name;
    EXPECT_EQ(X509_cmp(chain[1].get(), parse_cert(ca_pem).get()), 0) << name;
    EXPECT_EQ(verify(chain_pem, ca_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK) << name;
    EXPECT_EQ(sans(chain[0].get()), (std::set<std::string>{"DNS:localhost", "DNS:gateway.test", "IP:127.0.0.1",
                                                            "IP:0:0:0:0:0:0:0:1"}))
        << name;
    EvpPkeyPtr key = parse_key(read_file(out + "/" + name + ".key"));
    ASSERT_TRUE(key) << name;
    EXPECT_EQ(X509_check_private_key(chain[0].get(), key.get()), 1) << name;
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), std::string(name) == "server-rsa" ? "RSA" : "EC")) << name;
  }

  const std::string client_pem = read_file(out + "/client.pem");
  X509Ptr client = parse_cert(client_pem);
  ASSERT_TRUE(client);
  EXPECT_EQ(verify(client_pem, ca_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(subject_field(client.get(), NID_commonName), "demo-client");
  EXPECT_EQ(subject_field(client.get(), NID_organizationalUnitName), "demo");
  EXPECT_EQ(sans(client.get()), (std::set<std::string>{"URI:spiffe://demo/client"}));
  EvpPkeyPtr client_key = parse_key(read_file(out + "/client.key"));
  ASSERT_TRUE(client_key);
  EXPECT_EQ(X509_check_private_key(client.get(), client_key.get()), 1);
}

TEST_F(MakeDemoPki, FailsWhenTheDirectoryIsAFile) {
  const std::string path = dir_ + "/file";
  std::ofstream(path) << "x";
  std::string error;
  EXPECT_FALSE(make_demo_pki(path, {}, error));
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace gerbang::certs
