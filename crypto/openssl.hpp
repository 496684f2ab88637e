// OpenSSL behind RAII (STYLE.md §2.14): owning aliases for the OpenSSL types gerbang uses, plus the helper
// that turns OpenSSL's thread-local error queue into one readable string for a diagnostic or log line.
//
// CONTRACT: every alias owns exactly one reference and frees it with the matching OpenSSL *_free function;
// a null pointer is never passed to the free function. Functions returning strings never throw except
// std::bad_alloc. Thread-safety: OpenSSL's error queue is per thread, so drain_openssl_errors() only sees
// errors raised on the calling thread; the other helpers are reentrant.
//
// This header is OpenSSL-only: no Beast/Asio here (STYLE.md §2.20), and never include it from policies/.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

namespace gerbang::crypto {

// Calls `Free` on a non-null pointer. `Free` is any free function taking the pointer, e.g. X509_free.
template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p != nullptr) Free(p);
  }
};

// STACK_OF(X509) and GENERAL_NAMES are freed through macros in OpenSSL 3.0, which have no address;
// these functions give the deleters something to point at. Both free the elements too ("pop_free").
void free_x509_stack(STACK_OF(X509)* stack) noexcept;
void free_general_names(GENERAL_NAMES* names) noexcept;
void free_asn1_object_stack(STACK_OF(ASN1_OBJECT)* stack) noexcept;  // e.g. EXTENDED_KEY_USAGE

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<free_x509_stack>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using Asn1BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, Deleter<ASN1_BIT_STRING_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<free_general_names>>;
using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, Deleter<BASIC_CONSTRAINTS_free>>;
using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, Deleter<AUTHORITY_KEYID_free>>;
using ExtendedKeyUsagePtr = std::unique_ptr<EXTENDED_KEY_USAGE, Deleter<free_asn1_object_stack>>;

// Empties the calling thread's OpenSSL error queue, oldest first, into one string:
// "error:0480006C:PEM routines::no start line; error:...". Extra data attached to an error is appended in
// parentheses. Returns "" when the queue was empty.
std::string drain_openssl_errors();

// "<what>: <drained errors>", or just "<what>" when the queue was empty. For failing call sites:
//   if (X509_sign(...) <= 0) { error = openssl_failure("signing the certificate"); return nullptr; }
std::string openssl_failure(std::string_view what);

// Everything readable from a memory BIO, as a string (e.g. after PEM_write_bio_X509).
std::string bio_to_string(BIO* bio);

// The certificate's subject as an RFC 2253 one-line DN ("CN=gw,O=Kota X"); "" on failure.
std::string subject_rfc2253(const X509* cert);

// Lower-case hex of SHA-256 over the DER certificate (its fingerprint); "" on failure.
std::string sha256_fingerprint(const X509* cert);

// A read-only memory BIO over `data`. The BIO does not copy: `data` must outlive it.
BioPtr memory_bio(std::string_view data);

}  // namespace gerbang::crypto
