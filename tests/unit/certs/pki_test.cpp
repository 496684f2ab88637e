// The department PKI (certs/ca.hpp): CA layout and extensions, issuing, chain verification with OpenSSL's own
// verifier (root as the only trust anchor, intermediate untrusted), name constraints, revocation and CRLs,
// validity windows, PKCS#12, key file modes and passphrases.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509_vfy.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "certs/ca.hpp"
#include "crypto/openssl.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::certs {
namespace {

using namespace std::chrono_literals;
using crypto::X509Ptr;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0xffff;
  return st.st_mode & 07777;
}

X509Ptr read_cert(const std::string& path) {
  const std::string pem = slurp(path);
  auto bio = crypto::memory_bio(pem);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

X509CrlPtr parse_crl(const std::string& pem) {
  auto bio = crypto::memory_bio(pem);
  return X509CrlPtr(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
}

struct Verify {
  X509_CRL* crl = nullptr;
  std::optional<std::time_t> at;
};

// X509_verify_cert with root.pem as the only trust anchor and intermediate.pem as an untrusted chain element.
// Returns X509_V_OK or the verification error.
int verify(X509* leaf, const std::string& dir, int purpose, const Verify& v = {}) {
  X509Ptr root = read_cert(dir + "/root.pem");
  X509Ptr inter = read_cert(dir + "/intermediate.pem");
  if (!root || !inter) return -1;
  crypto::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.get());
  if (v.crl != nullptr) {
    X509_STORE_add_crl(store.get(), v.crl);
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  crypto::X509StackPtr untrusted(sk_X509_new_null());
  sk_X509_push(untrusted.get(), X509_dup(inter.get()));
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get());
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  if (v.at) X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), *v.at);
  const int ok = X509_verify_cert(ctx.get());
  const int err = X509_STORE_CTX_get_error(ctx.get());
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -2 : err);
}

class PkiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(crypto::init_sodium()); }

  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gerbang-pki-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    dir_ = tmp_ + "/ca";
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  void init(CaInitOptions o = {}) {
    o.dir = dir_;
    if (o.name == CaInitOptions{}.name) o.name = "Kota X Security Office";
    std::string error;
    ASSERT_TRUE(init_ca(o, error)) << error;
  }

  std::unique_ptr<CertificateAuthority> open(const Passphrase* p = nullptr) {
    std::string error;
    auto ca = CertificateAuthority::open(dir_, p, error);
    EXPECT_TRUE(ca) << error;
    return ca;
  }

  static std::unique_ptr<IssuedLeaf> issue(CertificateAuthority& ca, LeafRequest r) {
    std::string error;
    auto leaf = ca.issue(r, error);
    EXPECT_TRUE(leaf) << error;
    return leaf;
  }

  static LeafRequest client(const std::string& name) {
    LeafRequest r;
    r.name = name;
    r.type = CertType::client;
    r.ou = "Dinas Kesehatan";
    r.sans = {"URI:spiffe://kota.go.id/" + name, "email:" + name + "@kota.go.id"};
    return r;
  }
  static LeafRequest server(const std::string& name, std::vector<std::string> sans) {
    LeafRequest r;
    r.name = name;
    r.type = CertType::server;
    r.sans = std::move(sans);
    return r;
  }

  std::string write(const std::string& name, const std::string& contents, unsigned mode = 0600) {
    const std::string path = tmp_ + "/" + name;
    std::string error;
    EXPECT_TRUE(write_file_atomic(path, contents, mode, error)) << error;
    return path;
  }

  std::string tmp_;
  std::string dir_;
};

template <class T>
T* ext(X509* cert, int nid, int* critical = nullptr) {
  return static_cast<T*>(X509_get_ext_d2i(cert, nid, critical, nullptr));
}

TEST_F(PkiTest, InitWritesTheLayoutWithKeyModesAndCaExtensions) {
  init();
  for (const char* f : {"root.pem", "root.key", "intermediate.pem", "intermediate.key", "ca-chain.pem", "index.txt",
                        "crlnumber"})
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/" + f)) << f;
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/issued"));
  EXPECT_EQ(file_mode(dir_ + "/root.key"), 0600u);
  EXPECT_EQ(file_mode(dir_ + "/intermediate.key"), 0600u);
  EXPECT_EQ(file_mode(dir_), 0700u);
  EXPECT_EQ(slurp(dir_ + "/ca-chain.pem"), slurp(dir_ + "/intermediate.pem") + slurp(dir_ + "/root.pem"));
  EXPECT_EQ(slurp(dir_ + "/root.key").find("ENCRYPTED"), std::string::npos);

  X509Ptr root = read_cert(dir_ + "/root.pem");
  X509Ptr inter = read_cert(dir_ + "/intermediate.pem");
  ASSERT_TRUE(root && inter);
  EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(root.get()), "EC"));
  EXPECT_EQ(X509_check_issued(root.get(), root.get()), X509_V_OK);  // self-signed
  EXPECT_EQ(X509_check_issued(root.get(), inter.get()), X509_V_OK);

  int critical = -1;
  crypto::BasicConstraintsPtr bc(ext<BASIC_CONSTRAINTS>(root.get(), NID_basic_constraints, &critical));
  ASSERT_TRUE(bc);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(critical, 1);
  EXPECT_EQ(ASN1_INTEGER_get(bc->pathlen), 1);
  crypto::BasicConstraintsPtr ibc(ext<BASIC_CONSTRAINTS>(inter.get(), NID_basic_constraints, &critical));
  ASSERT_TRUE(ibc);
  EXPECT_TRUE(ibc->ca);
  EXPECT_EQ(ASN1_INTEGER_get(ibc->pathlen), 0);

  crypto::Asn1BitStringPtr ku(ext<ASN1_BIT_STRING>(root.get(), NID_key_usage, &critical));
  ASSERT_TRUE(ku);
  EXPECT_EQ(critical, 1);
  EXPECT_EQ(X509_get_key_usage(root.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(X509_get_key_usage(inter.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));

  // The intermediate's authorityKeyIdentifier is the root's subjectKeyIdentifier.
  const ASN1_OCTET_STRING* root_ski = X509_get0_subject_key_id(root.get());
  const ASN1_OCTET_STRING* inter_aki = X509_get0_authority_key_id(inter.get());
  ASSERT_NE(root_ski, nullptr);
  ASSERT_NE(inter_aki, nullptr);
  ASSERT_NE(X509_get0_subject_key_id(inter.get()), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(root_ski, inter_aki), 0);

  std::string error;
  auto entries = read_index(dir_, error);
  ASSERT_TRUE(entries) << error;
  EXPECT_TRUE(entries->empty());
}

TEST_F(PkiTest, InitRefusesToOverwriteAnExistingCa) {
  init();
  CaInitOptions o;
  o.dir = dir_;
  std::string error;
  EXPECT_FALSE(init_ca(o, error));
  EXPECT_NE(error.find("already holds a CA"), std::string::npos) << error;
}

TEST_F(PkiTest, RsaCaWithPassphraseEncryptsKeysAndNeedsTheRightPassphrase) {
  auto pass = Passphrase::from_string("correct horse battery staple");
  ASSERT_TRUE(pass);
  CaInitOptions o;
  o.key_type = KeyType::rsa_3072;
  o.passphrase = &*pass;
  init(o);
  EXPECT_NE(slurp(dir_ + "/intermediate.key").find("BEGIN ENCRYPTED PRIVATE KEY"), std::string::npos);
  EXPECT_NE(slurp(dir_ + "/root.key").find("BEGIN ENCRYPTED PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(file_mode(dir_ + "/intermediate.key"), 0600u);

  std::string error;
  EXPECT_FALSE(CertificateAuthority::open(dir_, nullptr, error));
  EXPECT_NE(error.find("is encrypted"), std::string::npos) << error;
  EXPECT_NE(error.find("--passphrase-file"), std::string::npos) << error;

  auto wrong = Passphrase::from_string("wrong horse");
  error.clear();
  EXPECT_FALSE(CertificateAuthority::open(dir_, &*wrong, error));
  EXPECT_NE(error.find("wrong passphrase"), std::string::npos) << error;

  auto ca = open(&*pass);
  ASSERT_TRUE(ca);
  EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(ca->intermediate()), "RSA"));
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(ca->intermediate())), 3072);
  auto leaf = issue(*ca, server("gw", {"DNS:gw.kota.go.id"}));
  ASSERT_TRUE(leaf);
  EXPECT_EQ(verify(leaf->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_OK);
}

TEST_F(PkiTest, IntermediateKeyReadableByOthersIsRefused) {
  init();
  ASSERT_EQ(::chmod((dir_ + "/intermediate.key").c_str(), 0644), 0);
  std::string error;
  EXPECT_FALSE(CertificateAuthority::open(dir_, nullptr, error));
  EXPECT_NE(error.find("0644"), std::string::npos) << error;
}

TEST_F(PkiTest, PassphraseFileRules) {
  std::string error;
  EXPECT_FALSE(Passphrase::from_file(write("open", "secret\n", 0644), error));
  EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
  EXPECT_FALSE(Passphrase::from_file(write("empty", "\nsecond line\n"), error));
  EXPECT_NE(error.find("empty"), std::string::npos) << error;
  auto p = Passphrase::from_file(write("ok", "s3cret pass\r\nignored\n"), error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(std::string(p->data(), p->size()), "s3cret pass");
  EXPECT_FALSE(Passphrase::from_file(tmp_ + "/missing", error));
}

TEST_F(PkiTest, IssuedClientAndServerCertificatesVerifyForTheirPurposeOnly) {
  init();
  auto ca = open();
  ASSERT_TRUE(ca);
  auto c = issue(*ca, client("dinkes"));
  auto s = issue(*ca, server("gateway", {"DNS:gateway.kota.go.id", "IP:10.1.2.3"}));
  ASSERT_TRUE(c && s);

  EXPECT_EQ(verify(c->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(verify(s->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(verify(c->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
  EXPECT_EQ(verify(s->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_INVALID_PURPOSE);

  EXPECT_EQ(c->subject, "CN=dinkes,OU=Dinas Kesehatan,O=Kota X Security Office");
  EXPECT_EQ(X509_get_extended_key_usage(c->cert.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_extended_key_usage(s->cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_key_usage(c->cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_check_ca(c->cert.get()), 0);
  int critical = -1;
  crypto::BasicConstraintsPtr bc(ext<BASIC_CONSTRAINTS>(c->cert.get(), NID_basic_constraints, &critical));
  ASSERT_TRUE(bc);
  EXPECT_FALSE(bc->ca);
  EXPECT_EQ(critical, 1);
  ASSERT_NE(X509_get0_authority_key_id(c->cert.get()), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c->cert.get()),
                                  X509_get0_subject_key_id(ca->intermediate())),
            0);
  EXPECT_NE(X509_get0_subject_key_id(c->cert.get()), nullptr);

  // SANs as requested.
  EXPECT_EQ(X509_check_host(s->cert.get(), "gateway.kota.go.id", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(s->cert.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_email(c->cert.get(), "dinkes@kota.go.id", 0, 0), 1);
  crypto::GeneralNamesPtr names(ext<GENERAL_NAMES>(c->cert.get(), NID_subject_alt_name));
  ASSERT_TRUE(names);
  bool uri = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_URI)
      uri = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier))) ==
            "spiffe://kota.go.id/dinkes";
  }
  EXPECT_TRUE(uri);

  // The chain is leaf + intermediate; the CA keeps a copy of each certificate.
  EXPECT_EQ(c->chain_pem, c->cert_pem + slurp(dir_ + "/intermediate.pem"));
  EXPECT_EQ(slurp(dir_ + "/issued/" + c->serial_hex + ".pem"), c->cert_pem);
  EXPECT_GE(c->serial_hex.size(), 30u);  // 128 random bits
  EXPECT_NE(c->serial_hex, s->serial_hex);
}

TEST_F(PkiTest, RsaLeafGetsKeyEnciphermentAndTrustAnchorMustBeTheRoot) {
  init();
  auto ca = open();
  auto r = server("legacy", {"DNS:legacy.kota.go.id"});
  r.key_type = KeyType::rsa_3072;
  auto leaf = issue(*ca, r);
  ASSERT_TRUE(leaf);
  EXPECT_EQ(X509_get_key_usage(leaf->cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));

  // Without the intermediate the chain cannot be built.
  crypto::X509StorePtr store(X509_STORE_new());
  X509Ptr root = read_cert(dir_ + "/root.pem");
  X509_STORE_add_cert(store.get(), root.get());
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf->cert.get(), nullptr);
  EXPECT_NE(X509_verify_cert(ctx.get()), 1);
  EXPECT_EQ(X509_STORE_CTX_get_error(ctx.get()), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_F(PkiTest, IssueRefusesBadRequests) {
  init();
  auto ca = open();
  std::string error;
  EXPECT_FALSE(ca->issue(server("web", {"URI:spiffe://x/y"}), error));
  EXPECT_NE(error.find("DNS: or IP:"), std::string::npos) << error;
  EXPECT_FALSE(ca->issue(client("../etc"), error));
  EXPECT_NE(error.find("--name"), std::string::npos) << error;
  auto bad_san = client("x");
  bad_san.sans = {"FTP:nope"};
  EXPECT_FALSE(ca->issue(bad_san, error));
  EXPECT_NE(error.find("unsupported name type"), std::string::npos) << error;
  auto too_long = client("y");
  too_long.validity = std::chrono::hours(24 * 4000);
  EXPECT_FALSE(ca->issue(too_long, error));
  EXPECT_NE(error.find("outlive the issuing CA"), std::string::npos) << error;
  auto entries = read_index(dir_, error);
  ASSERT_TRUE(entries);
  EXPECT_TRUE(entries->empty()) << "refused requests must not reach the index";
}

TEST_F(PkiTest, NameConstraintsRefuseNamesOutsideThePermittedTrees) {
  CaInitOptions o;
  o.name_constraints = {"DNS:.kota.go.id", "email:kota.go.id", "URI:.kota.go.id", "IP:10.0.0.0/8"};
  init(o);
  X509Ptr inter = read_cert(dir_ + "/intermediate.pem");
  int critical = -1;
  NameConstraintsPtr nc(ext<NAME_CONSTRAINTS>(inter.get(), NID_name_constraints, &critical));
  ASSERT_TRUE(nc);
  EXPECT_EQ(critical, 1);
  EXPECT_EQ(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 4);

  auto ca = open();
  auto inside = issue(*ca, server("api", {"DNS:api.kota.go.id", "IP:10.20.30.40"}));
  ASSERT_TRUE(inside);
  EXPECT_EQ(verify(inside->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  auto c = client("dinkes");
  c.sans = {"email:dinkes@kota.go.id", "URI:https://app.kota.go.id/dinkes"};
  auto spiffe = client("spiffe");
  spiffe.sans = {"URI:spiffe://kota.go.id/dinkes"};
  auto outside_uri = issue(*ca, spiffe);  // the host kota.go.id is not under .kota.go.id
  EXPECT_EQ(verify(outside_uri->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_PERMITTED_VIOLATION);
  auto inside_client = issue(*ca, c);
  EXPECT_EQ(verify(inside_client->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_OK);

  auto outside_dns = issue(*ca, server("evil", {"DNS:api.kota.go.id", "DNS:evil.example.com"}));
  EXPECT_EQ(verify(outside_dns->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_ERR_PERMITTED_VIOLATION);
  auto outside_ip = issue(*ca, server("evil-ip", {"DNS:x.kota.go.id", "IP:192.168.1.1"}));
  EXPECT_EQ(verify(outside_ip->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_ERR_PERMITTED_VIOLATION);
  auto e = client("mail");
  e.sans = {"email:someone@gmail.com"};
  auto outside_email = issue(*ca, e);
  EXPECT_EQ(verify(outside_email->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_PERMITTED_VIOLATION);
}

TEST_F(PkiTest, ExcludedSubtreeAndBadConstraintSyntax) {
  CaInitOptions o;
  o.name_constraints = {"DNS:.kota.go.id", "excluded:DNS:.secret.kota.go.id"};
  init(o);
  auto ca = open();
  auto ok = issue(*ca, server("a", {"DNS:a.kota.go.id"}));
  EXPECT_EQ(verify(ok->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  auto excluded = issue(*ca, server("b", {"DNS:b.secret.kota.go.id"}));
  EXPECT_EQ(verify(excluded->cert.get(), dir_, X509_PURPOSE_SSL_SERVER), X509_V_ERR_EXCLUDED_VIOLATION);

  CaInitOptions bad;
  bad.dir = tmp_ + "/bad";
  bad.name_constraints = {"IP:10.0.0.1"};
  std::string error;
  EXPECT_FALSE(init_ca(bad, error));
  EXPECT_NE(error.find("needs a network"), std::string::npos) << error;
  bad.name_constraints = {"URI:spiffe://kota.go.id"};
  EXPECT_FALSE(init_ca(bad, error));
  EXPECT_NE(error.find("a URI constraint is a host name"), std::string::npos) << error;
}

TEST_F(PkiTest, ListRevokeAndCrlWithReasonsAndNumbers) {
  init();
  auto ca = open();
  auto a = issue(*ca, client("dinkes"));
  auto b = issue(*ca, client("disdik"));
  auto s = issue(*ca, server("gw", {"DNS:gw.kota.go.id"}));
  ASSERT_TRUE(a && b && s);

  std::string error;
  auto entries = read_index(dir_, error);
  ASSERT_TRUE(entries) << error;
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].serial_hex, a->serial_hex);
  EXPECT_EQ((*entries)[0].subject, a->subject);
  EXPECT_EQ((*entries)[0].status, CertStatus::valid);
  EXPECT_EQ((*entries)[2].type, CertType::server);
  const auto expected_not_after = std::time(nullptr) - 300 + 90 * 86400;
  EXPECT_NEAR(static_cast<double>((*entries)[0].not_after), static_cast<double>(expected_not_after), 10.0);

  // Serials are accepted in upper case, with 0x and colons.
  std::string upper = a->serial_hex;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::time_t when = std::time(nullptr) - 60;
  ASSERT_TRUE(revoke_certificate(dir_, "0x" + upper, RevocationReason::key_compromise, when, error)) << error;
  ASSERT_TRUE(revoke_certificate(dir_, b->serial_hex, RevocationReason::superseded, when, error)) << error;
  EXPECT_FALSE(revoke_certificate(dir_, a->serial_hex, RevocationReason::superseded, when, error));
  EXPECT_NE(error.find("already revoked"), std::string::npos) << error;
  EXPECT_FALSE(revoke_certificate(dir_, "abcdef", RevocationReason::superseded, when, error));
  EXPECT_NE(error.find("no certificate with serial abcdef"), std::string::npos) << error;
  EXPECT_FALSE(revoke_certificate(dir_, "not-hex", RevocationReason::superseded, when, error));

  entries = read_index(dir_, error);
  ASSERT_TRUE(entries) << error;
  EXPECT_EQ((*entries)[0].status, CertStatus::revoked);
  EXPECT_EQ((*entries)[0].reason, RevocationReason::key_compromise);
  EXPECT_EQ((*entries)[0].revoked_at, when);
  EXPECT_EQ((*entries)[1].reason, RevocationReason::superseded);
  EXPECT_EQ((*entries)[2].status, CertStatus::valid);

  auto pem = ca->make_crl(7 * 24h, error);
  ASSERT_TRUE(pem) << error;
  X509CrlPtr crl = parse_crl(*pem);
  ASSERT_TRUE(crl);
  EXPECT_EQ(X509_CRL_get_version(crl.get()), X509_CRL_VERSION_2);
  EXPECT_EQ(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca->intermediate())), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca->intermediate())), 0);
  crypto::Asn1IntegerPtr number(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  ASSERT_TRUE(number);
  EXPECT_EQ(ASN1_INTEGER_get(number.get()), 1);
  crypto::AuthorityKeyIdPtr akid(
      static_cast<AUTHORITY_KEYID*>(X509_CRL_get_ext_d2i(crl.get(), NID_authority_key_identifier, nullptr, nullptr)));
  ASSERT_TRUE(akid && akid->keyid);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca->intermediate())), 0);

  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  ASSERT_EQ(sk_X509_REVOKED_num(revoked), 2);
  X509_REVOKED* entry = nullptr;
  ASSERT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, a->cert.get()), 1);
  Asn1EnumeratedPtr reason(
      static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr)));
  ASSERT_TRUE(reason);
  EXPECT_EQ(ASN1_ENUMERATED_get(reason.get()), 1);  // keyCompromise
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(entry), when), 0);
  ASSERT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, b->cert.get()), 1);
  reason.reset(static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr)));
  ASSERT_TRUE(reason);
  EXPECT_EQ(ASN1_ENUMERATED_get(reason.get()), 4);  // superseded
  EXPECT_NE(X509_CRL_get0_by_cert(crl.get(), &entry, s->cert.get()), 1);

  // Chain verification with the CRL: revoked ones fail, the others pass.
  EXPECT_EQ(verify(a->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {crl.get(), std::nullopt}), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(b->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {crl.get(), std::nullopt}), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(s->cert.get(), dir_, X509_PURPOSE_SSL_SERVER, {crl.get(), std::nullopt}), X509_V_OK);
  auto fresh = issue(*ca, client("dishub"));
  EXPECT_EQ(verify(fresh->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {crl.get(), std::nullopt}), X509_V_OK);

  // The next CRL has the next number.
  auto pem2 = ca->make_crl(24h, error);
  ASSERT_TRUE(pem2) << error;
  X509CrlPtr crl2 = parse_crl(*pem2);
  number.reset(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl2.get(), NID_crl_number, nullptr, nullptr)));
  EXPECT_EQ(ASN1_INTEGER_get(number.get()), 2);
}

TEST_F(PkiTest, UnspecifiedReasonLeavesTheReasonCodeOut) {
  init();
  auto ca = open();
  auto a = issue(*ca, client("dinkes"));
  std::string error;
  ASSERT_TRUE(revoke_certificate(dir_, a->serial_hex, RevocationReason::unspecified, std::time(nullptr), error));
  auto pem = ca->make_crl(24h, error);
  ASSERT_TRUE(pem) << error;
  X509CrlPtr crl = parse_crl(*pem);
  X509_REVOKED* entry = nullptr;
  ASSERT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, a->cert.get()), 1);
  EXPECT_EQ(X509_REVOKED_get_ext_by_NID(entry, NID_crl_reason, -1), -1);
}

TEST_F(PkiTest, ExpiredAndNotYetValidCertificatesFail) {
  init();
  auto ca = open();
  auto expired = client("old");
  expired.not_before_offset = -48h;
  expired.validity = 24h;
  auto future = client("future");
  future.not_before_offset = 24h;
  auto e = issue(*ca, expired);
  auto f = issue(*ca, future);
  auto ok = issue(*ca, client("now"));
  ASSERT_TRUE(e && f && ok);
  EXPECT_EQ(verify(e->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(verify(f->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_NOT_YET_VALID);

  // The same --days certificate, checked at a fake time past its end and before its start.
  const std::time_t now = std::time(nullptr);
  EXPECT_EQ(verify(ok->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {nullptr, now + 91 * 86400}),
            X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(verify(ok->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {nullptr, now - 3600}),
            X509_V_ERR_CERT_NOT_YET_VALID);
  EXPECT_EQ(verify(ok->cert.get(), dir_, X509_PURPOSE_SSL_CLIENT, {nullptr, now + 89 * 86400}), X509_V_OK);
}

TEST_F(PkiTest, Pkcs12RoundTripWithModernAlgorithms) {
  init();
  auto ca = open();
  auto leaf = issue(*ca, client("dinkes"));
  ASSERT_TRUE(leaf);
  auto pass = Passphrase::from_string("bundle pass");
  std::string error;
  auto der = make_pkcs12(*leaf, *pass, error);
  ASSERT_TRUE(der) << error;

  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der->size())));
  ASSERT_TRUE(p12);
  EXPECT_EQ(PKCS12_verify_mac(p12.get(), "bundle pass", -1), 1);
  EXPECT_NE(PKCS12_verify_mac(p12.get(), "wrong", -1), 1);
  const X509_ALGOR* mac_alg = nullptr;
  PKCS12_get0_mac(nullptr, &mac_alg, nullptr, nullptr, p12.get());
  ASSERT_NE(mac_alg, nullptr);
  const ASN1_OBJECT* mac_obj = nullptr;
  X509_ALGOR_get0(&mac_obj, nullptr, nullptr, mac_alg);
  EXPECT_EQ(OBJ_obj2nid(mac_obj), NID_sha256);

  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* chain = nullptr;
  ASSERT_EQ(PKCS12_parse(p12.get(), "bundle pass", &key, &cert, &chain), 1);
  crypto::EvpPkeyPtr key_owner(key);
  X509Ptr cert_owner(cert);
  crypto::X509StackPtr chain_owner(chain);
  EXPECT_EQ(X509_cmp(cert, leaf->cert.get()), 0);
  EXPECT_EQ(X509_check_private_key(cert, key), 1);
  ASSERT_EQ(sk_X509_num(chain), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(chain, 0), ca->intermediate()), 0);

  EVP_PKEY* k2 = nullptr;
  X509* c2 = nullptr;
  EXPECT_NE(PKCS12_parse(p12.get(), "wrong", &k2, &c2, nullptr), 1);
  EVP_PKEY_free(k2);
  X509_free(c2);
}

TEST_F(PkiTest, LeafFilesHaveTheRightModesAndAreNotOverwritten) {
  init();
  auto ca = open();
  auto leaf = issue(*ca, client("dinkes"));
  auto pass = Passphrase::from_string("bundle pass");
  std::string error;
  const std::string out = tmp_ + "/out";
  auto files = write_leaf_files(*leaf, out, "dinkes", &*pass, error);
  ASSERT_TRUE(files) << error;
  EXPECT_EQ(files->key, out + "/dinkes.key");
  EXPECT_EQ(file_mode(files->key), 0600u);
  EXPECT_EQ(file_mode(files->p12), 0600u);
  EXPECT_EQ(file_mode(files->cert), 0644u);
  EXPECT_EQ(slurp(files->chain), leaf->chain_pem);
  X509Ptr cert = read_cert(files->cert);
  const std::string key_pem = slurp(files->key);
  auto bio = crypto::memory_bio(key_pem);
  crypto::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(cert && key);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);

  EXPECT_TRUE(leaf_files_exist(out, "dinkes", false, error));
  EXPECT_FALSE(write_leaf_files(*leaf, out, "dinkes", nullptr, error));
  EXPECT_NE(error.find("refusing to overwrite"), std::string::npos) << error;
}

TEST_F(PkiTest, CertificateExpiriesListsEveryCertificateInTheFile) {
  CaInitOptions o;
  o.root_days = 7300;
  o.intermediate_days = 1000;
  init(o);
  const std::time_t now = std::time(nullptr);
  std::string error;
  auto list = certificate_expiries(dir_ + "/ca-chain.pem", now, error);
  ASSERT_EQ(list.size(), 2u) << error;
  EXPECT_EQ(list[0].subject, "CN=Kota X Security Office Issuing CA,O=Kota X Security Office");
  EXPECT_EQ(list[1].subject, "CN=Kota X Security Office Root CA,O=Kota X Security Office");
  EXPECT_NEAR(static_cast<double>(list[0].seconds_left), 1000.0 * 86400, 10.0);
  EXPECT_NEAR(static_cast<double>(list[1].seconds_left), 7300.0 * 86400, 10.0);
  EXPECT_EQ(list[0].seconds_left, static_cast<long long>(list[0].not_after - now));
  EXPECT_EQ(certificate_expiries(dir_ + "/ca-chain.pem").size(), 2u);

  EXPECT_TRUE(certificate_expiries(tmp_ + "/missing.pem", now, error).empty());
  EXPECT_NE(error.find("missing.pem"), std::string::npos);
  EXPECT_TRUE(certificate_expiries(write("junk.pem", "not a certificate\n"), now, error).empty());
  EXPECT_NE(error.find("no PEM certificate"), std::string::npos) << error;
}

TEST_F(PkiTest, LoadCrlFileChecksIssuerSignatureAndFreshness) {
  init();
  auto ca = open();
  auto a = issue(*ca, client("dinkes"));
  std::string error;
  ASSERT_TRUE(revoke_certificate(dir_, a->serial_hex, RevocationReason::key_compromise, std::time(nullptr), error));
  auto pem = ca->make_crl(24h, error);
  ASSERT_TRUE(pem) << error;
  const std::string crl_file = write("ca.crl", *pem, 0644);
  const std::time_t now = std::time(nullptr);

  auto loaded = load_crl_file(crl_file, dir_ + "/ca-chain.pem", now, error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->info.issuer, "CN=Kota X Security Office Issuing CA,O=Kota X Security Office");
  EXPECT_EQ(loaded->info.revoked, 1u);
  EXPECT_EQ(loaded->info.crl_number, "1");
  EXPECT_NEAR(static_cast<double>(loaded->info.next_update - now), 86400.0, 10.0);
  ASSERT_TRUE(loaded->crl);

  // DER works too.
  {
    unsigned char* der = nullptr;
    const int n = i2d_X509_CRL(loaded->crl.get(), &der);
    ASSERT_GT(n, 0);
    const std::string der_file = write("ca.crl.der", std::string(reinterpret_cast<char*>(der), n), 0644);
    OPENSSL_free(der);
    EXPECT_TRUE(load_crl_file(der_file, dir_ + "/ca-chain.pem", now, error)) << error;
  }

  EXPECT_FALSE(load_crl_file(crl_file, dir_ + "/ca-chain.pem", now + 2 * 86400, error));
  EXPECT_NE(error.find("expired at"), std::string::npos) << error;
  EXPECT_FALSE(load_crl_file(crl_file, dir_ + "/ca-chain.pem", now - 3600, error));
  EXPECT_NE(error.find("in the future"), std::string::npos) << error;
  EXPECT_FALSE(load_crl_file(crl_file, dir_ + "/root.pem", now, error));
  EXPECT_NE(error.find("is not among the CA certificates"), std::string::npos) << error;
  EXPECT_FALSE(load_crl_file(write("garbage.crl", "junk"), dir_ + "/ca-chain.pem", now, error));
  EXPECT_NE(error.find("is not a CRL"), std::string::npos) << error;

  // Another CA with the same names: the issuer name matches but the signature does not.
  CaInitOptions other;
  other.dir = tmp_ + "/other";
  other.name = "Kota X Security Office";
  ASSERT_TRUE(init_ca(other, error)) << error;
  EXPECT_FALSE(load_crl_file(crl_file, other.dir + "/ca-chain.pem", now, error));
  EXPECT_NE(error.find("signature does not verify"), std::string::npos) << error;
}

TEST_F(PkiTest, RevocationReasonNamesRoundTrip) {
  for (auto r : {RevocationReason::unspecified, RevocationReason::key_compromise, RevocationReason::ca_compromise,
                 RevocationReason::affiliation_changed, RevocationReason::superseded,
                 RevocationReason::cessation_of_operation, RevocationReason::privilege_withdrawn}) {
    auto parsed = parse_revocation_reason(revocation_reason_name(r));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, r);
  }
  EXPECT_EQ(parse_revocation_reason("KEYCOMPROMISE"), RevocationReason::key_compromise);
  EXPECT_FALSE(parse_revocation_reason("certificateHold"));
}

}  // namespace
}  // namespace gerbang::certs
