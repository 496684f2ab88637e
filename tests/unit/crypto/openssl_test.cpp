#include "crypto/openssl.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509err.h>

#include <string>
#include <type_traits>

namespace gerbang::crypto {
namespace {

// The deleters are empty, so the aliases cost exactly one pointer.
static_assert(sizeof(X509Ptr) == sizeof(X509*));
static_assert(sizeof(EvpPkeyPtr) == sizeof(EVP_PKEY*));
static_assert(sizeof(X509StackPtr) == sizeof(void*));
static_assert(!std::is_copy_constructible_v<BioPtr>);

TEST(DrainOpensslErrors, EmptyQueueGivesEmptyString) {
  ERR_clear_error();
  EXPECT_EQ(drain_openssl_errors(), "");
}

TEST(DrainOpensslErrors, JoinsOldestFirstAndEmptiesTheQueue) {
  ERR_clear_error();
  ERR_raise_data(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE, "first %s", "detail");
  ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
  const std::string s = drain_openssl_errors();
  EXPECT_EQ(ERR_peek_error(), 0UL);
  const auto first = s.find("cert already in hash table");
  const auto data = s.find("(first detail)");
  const auto sep = s.find("; error:");
  const auto second = s.find("key values mismatch");
  ASSERT_NE(first, std::string::npos) << s;
  ASSERT_NE(data, std::string::npos) << s;
  ASSERT_NE(sep, std::string::npos) << s;
  ASSERT_NE(second, std::string::npos) << s;
  EXPECT_EQ(s.rfind("error:", 0), 0U) << s;
  EXPECT_LT(first, data);
  EXPECT_LT(data, sep);
  EXPECT_LT(sep, second);
  EXPECT_EQ(drain_openssl_errors(), "");
}

TEST(DrainOpensslErrors, CapturesARealFailure) {
  ERR_clear_error();
  BioPtr bio = memory_bio("this is not PEM");
  ASSERT_TRUE(bio);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_FALSE(cert);
  const std::string s = drain_openssl_errors();
  EXPECT_NE(s.find("no start line"), std::string::npos) << s;
}

TEST(OpensslFailure, AppendsErrorsOnlyWhenThereAreSome) {
  ERR_clear_error();
  EXPECT_EQ(openssl_failure("signing the certificate"), "signing the certificate");
  ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
  const std::string s = openssl_failure("loading the key");
  EXPECT_EQ(s.rfind("loading the key: error:", 0), 0U) << s;
  EXPECT_NE(s.find("key values mismatch"), std::string::npos) << s;
  EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST(MemoryBio, RoundTripsThroughBioToString) {
  const std::string text("hello\0world", 11);
  BioPtr in = memory_bio(text);
  ASSERT_TRUE(in);
  char buf[64];
  const int n = BIO_read(in.get(), buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), text);

  BioPtr out(BIO_new(BIO_s_mem()));
  ASSERT_TRUE(out);
  ASSERT_EQ(BIO_write(out.get(), "abc", 3), 3);
  EXPECT_EQ(bio_to_string(out.get()), "abc");
  EXPECT_EQ(bio_to_string(nullptr), "");
}

TEST(MemoryBio, EmptyInputIsValid) {
  BioPtr in = memory_bio("");
  ASSERT_TRUE(in);
  char c;
  EXPECT_LE(BIO_read(in.get(), &c, 1), 0);
}

TEST(Aliases, OwnAndFreeRealObjects) {
  // Exercised under ASan/valgrind these catch double frees and leaks in the deleters.
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ASSERT_TRUE(key);
  X509Ptr cert(X509_new());
  ASSERT_TRUE(cert);
  ASSERT_EQ(X509_set_pubkey(cert.get(), key.get()), 1);

  X509StackPtr stack(sk_X509_new_null());
  ASSERT_TRUE(stack);
  ASSERT_GT(sk_X509_push(stack.get(), X509_new()), 0);
  ASSERT_GT(sk_X509_push(stack.get(), X509_dup(cert.get())), 0);
  EXPECT_EQ(sk_X509_num(stack.get()), 2);

  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  ASSERT_TRUE(names);
  ASSERT_GT(sk_GENERAL_NAME_push(names.get(), GENERAL_NAME_new()), 0);

  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  ASSERT_TRUE(eku);
  ASSERT_GT(sk_ASN1_OBJECT_push(eku.get(), OBJ_txt2obj("1.2.3.4", 1)), 0);

  BignumPtr bn(BN_new());
  ASSERT_TRUE(bn);
  ASSERT_EQ(BN_set_word(bn.get(), 42), 1);
  Asn1IntegerPtr i(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  ASSERT_TRUE(i);
  EXPECT_EQ(ASN1_INTEGER_get(i.get()), 42);

  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EvpPkeyCtxPtr pctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  X509NamePtr name(X509_NAME_new());
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "CA:FALSE"));
  EXPECT_TRUE(md && pctx && name && ext);

  X509Ptr empty;  // a null pointer must not reach X509_free
  empty.reset();
}

}  // namespace
}  // namespace gerbang::crypto
