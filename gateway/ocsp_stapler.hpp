// OCSP stapling for the gateway's own certificates (listeners[].tls.ocsp_stapling).
//
// One OcspStapler per process, shared by every configuration generation (a reload keeps the responses it
// already has). A background thread asks each certificate's OCSP responder (plain HTTP, as RFC 6960 A.1
// responders are) for the certificate's status, verifies the answer against the certificate's issuer, and
// keeps the DER response until it is refreshed — halfway through its validity, at least hourly; on failure
// it retries with backoff (5 s doubling to 5 min). The TLS status callback staples the current response
// when the client asks (status_request); without a verified, unexpired response nothing is stapled and the
// handshake goes on (stapling is an optimisation for the client, not a gate).
//
// CONTRACT: watch() and staple() are thread-safe; staple() is called from handshakes on every worker and
// only takes a mutex for a map lookup. Responses are bounded (64 KiB) and fetches time out (10 s).
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

typedef struct x509_st X509;

namespace gerbang::gateway {

// The first OCSP responder URL in the certificate's authorityInfoAccess, if any.
std::optional<std::string> ocsp_responder_url(X509* cert);

struct OcspVerdict {
  bool ok = false;            // a verified, currently valid response for this certificate
  std::string error;          // why not, when !ok
  std::string status;         // "good", "revoked" or "unknown" (the certificate status inside)
  std::time_t next_update = 0;  // 0 = the responder gave none
  std::time_t this_update = 0;
};

// Checks a DER OCSP response: successful, signed by the issuer (or a responder it delegated to with the
// OCSP-signing EKU), covering `leaf`, and within its validity at `now` (5 minutes of clock skew allowed).
OcspVerdict check_ocsp_response(const std::vector<unsigned char>& der, X509* leaf, X509* issuer, std::time_t now);

class OcspStapler {
 public:
  static std::shared_ptr<OcspStapler> create();  // starts the fetch thread
  ~OcspStapler();                                // stops and joins it
  OcspStapler(const OcspStapler&) = delete;
  OcspStapler& operator=(const OcspStapler&) = delete;

  // Starts keeping a response for `leaf` (issued by `issuer`) from `url`. Returns the key staple() takes.
  // Watching the same certificate and URL again is a no-op that returns the same key.
  std::string watch(X509* leaf, X509* issuer, const std::string& url);

  // The DER response to staple for `key`, or null when there is no verified one that is still valid.
  std::shared_ptr<const std::vector<unsigned char>> staple(const std::string& key) const;

  // gerbang_ocsp_staple_* series for /metrics.
  void append_metrics(std::string& out) const;

 private:
  struct Impl;
  explicit OcspStapler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::gateway
