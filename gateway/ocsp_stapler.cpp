#include "gateway/ocsp_stapler.hpp"

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "crypto/openssl.hpp"
#include "gateway/problem.hpp"

namespace gerbang::gateway {

namespace {

using crypto::Deleter;
using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, Deleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, Deleter<OCSP_BASICRESP_free>>;
using OcspCertIdPtr = std::unique_ptr<OCSP_CERTID, Deleter<OCSP_CERTID_free>>;
using OcspRequestPtr = std::unique_ptr<OCSP_REQUEST, Deleter<OCSP_REQUEST_free>>;

constexpr std::size_t kMaxResponseBytes = 64 * 1024;
constexpr int kFetchTimeoutSeconds = 10;
constexpr std::chrono::seconds kFirstRetry{5};
constexpr std::chrono::seconds kMaxRetry{300};
constexpr std::chrono::seconds kMaxRefresh{3600};
constexpr std::chrono::seconds kMinRefresh{60};
constexpr long kClockSkewSeconds = 300;

std::time_t to_time_t(const ASN1_GENERALIZEDTIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

void free_openssl_string(char* p) noexcept { OPENSSL_free(p); }

// POSTs `request` to the responder; the DER response or an error.
std::optional<std::vector<unsigned char>> fetch(const std::string& url, OCSP_REQUEST* request, std::string& error) {
  char* host = nullptr;
  char* port = nullptr;
  char* path = nullptr;
  int use_ssl = 0;
  if (OSSL_HTTP_parse_url(url.c_str(), &use_ssl, nullptr, &host, &port, nullptr, &path, nullptr, nullptr) != 1) {
    error = "cannot parse responder URL " + url + ": " + crypto::drain_openssl_errors();
    return std::nullopt;
  }
  std::unique_ptr<char, Deleter<free_openssl_string>> h(host), p(port), pa(path);
  if (use_ssl != 0) {
    error = "responder URL " + url + ": only http:// responders are supported";
    return std::nullopt;
  }
  crypto::BioPtr body(ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), reinterpret_cast<ASN1_VALUE*>(request)));
  if (!body) {
    error = "cannot encode the OCSP request";
    return std::nullopt;
  }
  // proxy "" = connect directly (NULL would take http_proxy from the environment).
  crypto::BioPtr rsp(OSSL_HTTP_transfer(nullptr, host, port, path, 0, "", nullptr, nullptr, nullptr, nullptr, nullptr,
                                        0, nullptr, "application/ocsp-request", body.get(),
                                        "application/ocsp-response", 1, kMaxResponseBytes, kFetchTimeoutSeconds, 0));
  if (!rsp) {
    const std::string e = crypto::drain_openssl_errors();
    error = "request to " + url + " failed" + (e.empty() ? "" : ": " + e);
    return std::nullopt;
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(rsp.get(), &data);
  if (n <= 0 || data == nullptr) {
    error = "empty response from " + url;
    return std::nullopt;
  }
  return std::vector<unsigned char>(reinterpret_cast<unsigned char*>(data), reinterpret_cast<unsigned char*>(data) + n);
}

}  // namespace

std::optional<std::string> ocsp_responder_url(X509* cert) {
  STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(cert);
  std::optional<std::string> out;
  if (urls != nullptr && sk_OPENSSL_STRING_num(urls) > 0) {
    out = sk_OPENSSL_STRING_value(urls, 0);
  }
  X509_email_free(urls);  // frees an OPENSSL_STRING stack, as X509_get1_ocsp's documentation says
  return out;
}

OcspVerdict check_ocsp_response(const std::vector<unsigned char>& der, X509* leaf, X509* issuer, std::time_t now) {
  OcspVerdict v;
  const unsigned char* p = der.data();
  OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!resp || p != der.data() + der.size()) {
    ERR_clear_error();
    v.error = "not a DER OCSP response";
    return v;
  }
  const int rs = OCSP_response_status(resp.get());
  if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    v.error = std::string("responder answered ") + OCSP_response_status_str(rs);
    return v;
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) {
    v.error = "response has no basic response";
    return v;
  }
  // Trust: the issuer itself (OCSP_TRUSTOTHER: a signer found among `certs` is trusted), or a delegated
  // responder certificate in the response that the issuer signed (the store holds the issuer as a partial-chain
  // anchor, and OpenSSL checks the OCSP-signing EKU of a delegated signer).
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StackPtr certs(sk_X509_new_null());
  if (!store || !certs || X509_STORE_add_cert(store.get(), issuer) != 1 || X509_up_ref(issuer) != 1) {
    v.error = "out of memory";
    return v;
  }
  sk_X509_push(certs.get(), issuer);
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  if (OCSP_basic_verify(basic.get(), certs.get(), store.get(), OCSP_TRUSTOTHER) <= 0) {
    v.error = "signature does not verify against the issuer: " + crypto::drain_openssl_errors();
    return v;
  }
  OcspCertIdPtr id(OCSP_cert_to_id(nullptr, leaf, issuer));
  int status = -1;
  int reason = -1;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (!id || OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at, &this_update, &next_update) != 1) {
    ERR_clear_error();
    v.error = "response does not cover this certificate";
    return v;
  }
  v.status = OCSP_cert_status_str(status);
  v.this_update = to_time_t(this_update);
  v.next_update = next_update ? to_time_t(next_update) : 0;
  if (v.this_update == 0 || v.this_update > now + kClockSkewSeconds) {
    v.error = "response is not yet valid (thisUpdate in the future)";
    return v;
  }
  if (v.next_update != 0 && v.next_update + kClockSkewSeconds < now) {
    v.error = "response has expired (nextUpdate passed)";
    return v;
  }
  v.ok = true;
  return v;
}

// ---------------------------------------------------------------------------------------------------------

struct OcspStapler::Impl {
  struct Entry {
    crypto::X509Ptr leaf, issuer;
    std::string url, subject;
    std::shared_ptr<const std::vector<unsigned char>> response;  // verified; null = none
    OcspVerdict verdict;
    std::chrono::steady_clock::time_point due{};  // next fetch
    std::chrono::seconds backoff = kFirstRetry;
    std::uint64_t ok = 0, failed = 0;
    std::string last_error;
  };

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::map<std::string, Entry> entries;  // key → entry
  std::thread thread;

  void run() {
    std::unique_lock lock(mu);
    while (!stop) {
      auto now = std::chrono::steady_clock::now();
      auto next = now + kMaxRefresh;
      std::string key;
      for (auto& [k, e] : entries) {
        if (e.due <= now) {
          key = k;
          break;
        }
        next = std::min(next, e.due);
      }
      if (key.empty()) {
        cv.wait_until(lock, next);
        continue;
      }
      Entry& e = entries.at(key);  // entries are never erased, so the reference stays valid
      crypto::X509Ptr leaf(X509_dup(e.leaf.get()));
      crypto::X509Ptr issuer(X509_dup(e.issuer.get()));
      const std::string url = e.url;
      e.due = now + kMaxRefresh;  // not picked again while this fetch runs
      lock.unlock();
      refresh(key, leaf.get(), issuer.get(), url);
      lock.lock();
    }
  }

  void refresh(const std::string& key, X509* leaf, X509* issuer, const std::string& url) {
    std::string error;
    std::optional<std::vector<unsigned char>> der;
    OcspVerdict verdict;
    OcspRequestPtr req(OCSP_REQUEST_new());
    OCSP_CERTID* id = (leaf && issuer && req) ? OCSP_cert_to_id(nullptr, leaf, issuer) : nullptr;
    if (id == nullptr || OCSP_request_add0_id(req.get(), id) == nullptr) {
      OCSP_CERTID_free(id);
      error = "cannot build the OCSP request";
    } else {
      der = fetch(url, req.get(), error);
      if (der) {
        verdict = check_ocsp_response(*der, leaf, issuer, std::time(nullptr));
        if (!verdict.ok) error = verdict.error;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu);
    Entry& e = entries.at(key);
    if (error.empty()) {
      const bool changed = !e.response || e.verdict.status != verdict.status;
      e.response = std::make_shared<const std::vector<unsigned char>>(std::move(*der));
      e.verdict = verdict;
      e.backoff = kFirstRetry;
      e.last_error.clear();
      ++e.ok;
      // Refresh halfway to nextUpdate, within [1 min, 1 h].
      auto refresh_in = kMaxRefresh;
      if (verdict.next_update != 0) {
        const auto half = std::chrono::seconds((verdict.next_update - std::time(nullptr)) / 2);
        refresh_in = std::clamp(half, kMinRefresh, kMaxRefresh);
      }
      e.due = now + refresh_in;
      if (verdict.status == "revoked") {
        spdlog::error("ocsp: the issuer reports certificate \"{}\" as REVOKED ({}); replace it", e.subject, url);
      } else if (changed) {
        spdlog::info("ocsp: stapling a \"{}\" response for \"{}\" from {}", verdict.status, e.subject, url);
      }
    } else {
      ++e.failed;
      e.last_error = error;
      e.due = now + e.backoff;
      e.backoff = std::min(e.backoff * 2, kMaxRetry);
      // Keep a previous response while it is still valid (staple() checks nextUpdate).
      spdlog::warn("ocsp: no fresh response for \"{}\": {} (retry in {}s{})", e.subject, error,
                   std::chrono::duration_cast<std::chrono::seconds>(e.due - now).count(),
                   e.response ? "; the previous response is stapled until it expires" : "");
    }
  }
};

OcspStapler::OcspStapler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::shared_ptr<OcspStapler> OcspStapler::create() {
  std::shared_ptr<OcspStapler> s(new OcspStapler(std::make_unique<Impl>()));
  s->impl_->thread = std::thread([impl = s->impl_.get()] { impl->run(); });
  return s;
}

OcspStapler::~OcspStapler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string OcspStapler::watch(X509* leaf, X509* issuer, const std::string& url) {
  std::string key = crypto::sha256_fingerprint(leaf) + " " + url;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->entries.count(key) != 0) return key;
    Impl::Entry e;
    e.leaf.reset(X509_dup(leaf));
    e.issuer.reset(X509_dup(issuer));
    e.url = url;
    e.subject = crypto::subject_rfc2253(leaf);
    e.due = std::chrono::steady_clock::now();  // fetch now
    impl_->entries.emplace(key, std::move(e));
  }
  impl_->cv.notify_all();
  return key;
}

std::shared_ptr<const std::vector<unsigned char>> OcspStapler::staple(const std::string& key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->entries.find(key);
  if (it == impl_->entries.end() || !it->second.response) return nullptr;
  const auto& v = it->second.verdict;
  if (v.next_update != 0 && v.next_update < std::time(nullptr)) return nullptr;  // expired: staple nothing
  return it->second.response;
}

void OcspStapler::append_metrics(std::string& out) const {
  std::lock_guard lock(impl_->mu);
  if (impl_->entries.empty()) return;
  const std::time_t now = std::time(nullptr);
  out += "# HELP gerbang_ocsp_staple_valid 1 when a verified, unexpired OCSP response is stapled for the certificate\n"
         "# TYPE gerbang_ocsp_staple_valid gauge\n";
  for (const auto& [key, e] : impl_->entries) {
    const bool valid = e.response && (e.verdict.next_update == 0 || e.verdict.next_update >= now);
    std::string subject;
    append_json_escaped(subject, e.subject);  // escapes quotes and backslashes for the label value
    fmt::format_to(std::back_inserter(out),
                   "gerbang_ocsp_staple_valid{{certificate=\"{}\",subject=\"{}\",status=\"{}\"}} {}\n",
                   key.substr(0, 16), subject, e.response ? e.verdict.status : "none", valid ? 1 : 0);
  }
  out += "# HELP gerbang_ocsp_fetches_total OCSP responder fetches by result\n"
         "# TYPE gerbang_ocsp_fetches_total counter\n";
  for (const auto& [key, e] : impl_->entries) {
    fmt::format_to(std::back_inserter(out),
                   "gerbang_ocsp_fetches_total{{certificate=\"{}\",result=\"ok\"}} {}\n"
                   "gerbang_ocsp_fetches_total{{certificate=\"{}\",result=\"failed\"}} {}\n",
                   key.substr(0, 16), e.ok, key.substr(0, 16), e.failed);
  }
}

}  // namespace gerbang::gateway
