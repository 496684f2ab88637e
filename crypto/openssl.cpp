#include "crypto/openssl.hpp"

#include <openssl/err.h>

#include <climits>

namespace gerbang::crypto {

void free_x509_stack(STACK_OF(X509)* stack) noexcept { sk_X509_pop_free(stack, X509_free); }

void free_general_names(GENERAL_NAMES* names) noexcept { sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free); }

void free_asn1_object_stack(STACK_OF(ASN1_OBJECT)* stack) noexcept {
  sk_ASN1_OBJECT_pop_free(stack, ASN1_OBJECT_free);
}

std::string drain_openssl_errors() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  // ERR_get_error_all() pops the oldest entry, so the string reads in the order OpenSSL raised them
  // (outermost cause last).
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
      out += " (";
      out += data;
      out += ')';
    }
  }
  return out;
}

std::string openssl_failure(std::string_view what) {
  std::string out(what);
  std::string errors = drain_openssl_errors();
  if (!errors.empty()) {
    out += ": ";
    out += errors;
  }
  return out;
}

std::string bio_to_string(BIO* bio) {
  if (bio == nullptr) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<std::size_t>(n));
}

std::string subject_rfc2253(const X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) return {};
  return bio_to_string(bio.get());
}

std::string sha256_fingerprint(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return {};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    out[2 * i] = kDigits[md[i] >> 4];
    out[2 * i + 1] = kDigits[md[i] & 0xf];
  }
  return out;
}

BioPtr memory_bio(std::string_view data) {
  if (data.size() > static_cast<std::size_t>(INT_MAX)) return nullptr;
  // An empty view may have a null data(); BIO_new_mem_buf needs a valid pointer even for length 0.
  const char* p = data.empty() ? "" : data.data();
  return BioPtr(BIO_new_mem_buf(p, static_cast<int>(data.size())));
}

}  // namespace gerbang::crypto
