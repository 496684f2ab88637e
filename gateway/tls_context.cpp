#include "gateway/tls_context.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>

#include "certs/ca.hpp"
#include "crypto/keys.hpp"
#include "crypto/openssl.hpp"
#include "gateway/ocsp_stapler.hpp"

namespace gerbang::gateway {

namespace ssl = boost::asio::ssl;

namespace {

// Hardened defaults, as Envoy's: TLS 1.2+, ECDHE with AEAD only, server preference.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";

std::string lower(std::string s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

// Session ticket keys: the current key encrypts, current and previous decrypt (a ticket issued just before a
// rotation still resumes, and is renewed). Keys are random per process; several gateway instances behind
// one load balancer simply fall back to full handshakes across instances.
struct TicketKey {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> aes{};
  std::array<unsigned char, 32> hmac{};
  void fill() {
    randombytes_buf(name.data(), name.size());
    randombytes_buf(aes.data(), aes.size());
    randombytes_buf(hmac.data(), hmac.size());
  }
  void wipe() {
    sodium_memzero(aes.data(), aes.size());
    sodium_memzero(hmac.data(), hmac.size());
  }
};

class TicketKeyRing {
 public:
  TicketKeyRing() { current_.fill(); previous_.fill(); }
  ~TicketKeyRing() { current_.wipe(); previous_.wipe(); }
  void rotate() {
    std::lock_guard lock(mu_);
    previous_.wipe();
    previous_ = current_;
    current_.fill();
  }
  // Returns 2 (ok, issue a new ticket), 0 (unknown key: full handshake), -1 error. Always renewing matters for
  // TLS 1.3: OpenSSL sends a new ticket after a resumption only when asked to, and clients that chain sessions
  // (each connection resuming the previous one's ticket) would otherwise fall back to a full handshake every
  // other time. Tickets are then single-use in practice, as RFC 8446 §C.4 recommends.
  int handle(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx, int enc) {
    std::lock_guard lock(mu_);
    const TicketKey* key = nullptr;
    const int rc = 2;
    if (enc) {
      key = &current_;
      std::memcpy(key_name, key->name.data(), 16);
      if (RAND_bytes(iv, 16) != 1) {
        return -1;
      }
    } else if (std::memcmp(key_name, current_.name.data(), 16) == 0) {
      key = &current_;
    } else if (std::memcmp(key_name, previous_.name.data(), 16) == 0) {
      key = &previous_;
    } else {
      return 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()),
                                          key->hmac.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) {
      return -1;
    }
    const int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv)
                       : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv);
    return ok == 1 ? (enc ? 1 : rc) : -1;
  }

 private:
  std::mutex mu_;
  TicketKey current_;   // guarded by mu_
  TicketKey previous_;  // guarded by mu_
};

int ex_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

int ticket_cb(SSL* s, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cctx,
              EVP_MAC_CTX* hctx, int enc) {
  auto* ring = static_cast<TicketKeyRing*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_index()));
  return ring ? ring->handle(key_name, iv, cctx, hctx, enc) : -1;
}

int alpn_cb(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
            void*) {
  static const unsigned char kProto[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kProto, sizeof kProto, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  // The client offered only protocols we do not speak (say, h2 alone): carry on without ALPN, as HTTP/1.1.
  return SSL_TLSEXT_ERR_NOACK;
}

std::vector<std::string> dns_sans(X509* cert) {
  std::vector<std::string> names;
  auto* gens = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (gens == nullptr) {
    return names;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
  }
  GENERAL_NAMES_free(gens);
  return names;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// ServerTls

struct ServerTls::Impl {
  std::vector<std::unique_ptr<ssl::context>> contexts;  // [0] = default
  std::map<std::string, ssl::context*, std::less<>> by_name;  // exact or "*.suffix" → context
  TicketKeyRing tickets;
  std::shared_ptr<OcspStapler> stapler;           // null: no stapling (off, or --check-config)
  std::map<const X509*, std::string> staple_keys;  // leaf certificate (as loaded in a context) → stapler key

  // Staples the current OCSP response for the certificate this handshake uses, if there is one.
  static int status_cb(SSL* s, void* arg) {
    const auto* self = static_cast<const Impl*>(arg);
    const X509* leaf = SSL_get_certificate(s);
    auto it = self->staple_keys.find(leaf);
    if (!self->stapler || it == self->staple_keys.end()) {
      return SSL_TLSEXT_ERR_NOACK;
    }
    auto der = self->stapler->staple(it->second);
    if (!der || der->empty()) {
      return SSL_TLSEXT_ERR_NOACK;
    }
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(der->size()));
    if (copy == nullptr) {
      return SSL_TLSEXT_ERR_NOACK;
    }
    std::memcpy(copy, der->data(), der->size());
    if (SSL_set_tlsext_status_ocsp_resp(s, copy, static_cast<long>(der->size())) != 1) {  // takes ownership
      OPENSSL_free(copy);
      return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
  }

  ssl::context* find(std::string_view name) const {
    const std::string n = lower(std::string(name));
    if (auto it = by_name.find(n); it != by_name.end()) {
      return it->second;
    }
    if (auto dot = n.find('.'); dot != std::string::npos) {
      if (auto it = by_name.find("*" + n.substr(dot)); it != by_name.end()) {
        return it->second;
      }
    }
    return nullptr;
  }

  static int servername_cb(SSL* s, int*, void* arg) {
    const auto* self = static_cast<const Impl*>(arg);
    const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (name != nullptr) {
      if (auto* ctx = self->find(name); ctx != nullptr && ctx->native_handle() != SSL_get_SSL_CTX(s)) {
        SSL_set_SSL_CTX(s, ctx->native_handle());
      }
    }
    return SSL_TLSEXT_ERR_OK;  // unknown names get the default certificate
  }
};

ServerTls::ServerTls(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerTls::~ServerTls() = default;
ssl::context& ServerTls::context() noexcept { return *impl_->contexts.front(); }
void ServerTls::rotate_ticket_keys() { impl_->tickets.rotate(); }

std::unique_ptr<ServerTls> ServerTls::create(const config::ListenerConfig& listener, std::vector<std::string>& errors,
                                             std::shared_ptr<OcspStapler> stapler) {
  auto impl = std::make_unique<Impl>();
  impl->stapler = std::move(stapler);
  const auto& tls = listener.tls;
  const std::size_t errors_before = errors.size();
  auto fail = [&](std::string what) {
    std::string e = crypto::drain_openssl_errors();
    errors.push_back("listener " + listener.name + ": " + what + (e.empty() ? "" : ": " + e));
  };

  // Certificates with the same name set share one context, so an ECDSA and an RSA certificate for the same
  // names are both offered and OpenSSL picks by the client's signature algorithms.
  std::vector<std::pair<std::vector<std::string>, ssl::context*>> groups;

  for (const auto& cert : tls.certificates) {
    if (auto problem = crypto::private_key_file_problem(cert.key_file)) {
      errors.push_back("listener " + listener.name + ": " + *problem);
      continue;
    }
    // Read the names first, from the leaf certificate.
    std::vector<std::string> names;
    {
      BIO* bio = BIO_new_file(cert.cert_file.c_str(), "r");
      X509* x = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
      BIO_free(bio);
      if (x == nullptr) {
        fail("cannot read certificate " + cert.cert_file);
        continue;
      }
      names = cert.server_names.empty() ? dns_sans(x) : cert.server_names;
      X509_free(x);
      for (auto& n : names) {
        n = lower(n);
      }
      std::sort(names.begin(), names.end());
    }
    ssl::context* ctx = nullptr;
    for (auto& [group_names, group_ctx] : groups) {
      if (group_names == names) {
        ctx = group_ctx;
      }
    }
    if (ctx == nullptr) {
      auto owned = std::make_unique<ssl::context>(ssl::context::tls_server);
      ctx = owned.get();
      SSL_CTX* c = ctx->native_handle();
      SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 (tls.session_tickets ? 0 : SSL_OP_NO_TICKET));
      SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
      SSL_CTX_set_min_proto_version(
          c, tls.min_version == config::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
      if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 || SSL_CTX_set_ciphersuites(c, kTls13Suites) != 1 ||
          SSL_CTX_set1_groups_list(c, kGroups) != 1) {
        fail("cannot set cipher suites");
      }
      SSL_CTX_set_alpn_select_cb(c, alpn_cb, nullptr);
      const std::string sid = "gerbang:" + listener.name;
      SSL_CTX_set_session_id_context(c, reinterpret_cast<const unsigned char*>(sid.data()),
                                     static_cast<unsigned>(std::min<std::size_t>(sid.size(), SSL_MAX_SID_CTX_LENGTH)));
      SSL_CTX_set_session_cache_mode(c, tls.session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
      if (tls.session_cache) {
        SSL_CTX_sess_set_cache_size(c, 20000);  // bounded: ~20k sessions per listener
      }
      if (tls.session_tickets) {
        SSL_CTX_set_ex_data(c, ex_index(), &impl->tickets);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
        SSL_CTX_set_num_tickets(c, 1);
      } else {
        SSL_CTX_set_num_tickets(c, tls.session_cache ? 1 : 0);
      }
      if (tls.client_auth != config::ClientAuth::off) {
        if (SSL_CTX_load_verify_locations(c, tls.client_ca_file.c_str(), nullptr) != 1) {
          fail("cannot load client CA bundle " + tls.client_ca_file);
        }
        STACK_OF(X509_NAME)* ca_names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
        if (ca_names != nullptr) {
          SSL_CTX_set_client_CA_list(c, ca_names);
        }
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
        if (tls.client_auth == config::ClientAuth::required) {
          mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(c, mode, nullptr);
        SSL_CTX_set_verify_depth(c, static_cast<int>(tls.client_verify_depth));
        if (!tls.client_crl_file.empty()) {
          // Revocation: the leaf is checked against the CRL of its issuer (a reload picks up a new CRL). A CRL
          // from another CA, with a bad signature, or outside its validity would refuse every client: refuse the
          // configuration instead (a reload keeps the previous one).
          std::string crl_error;
          auto loaded = certs::load_crl_file(tls.client_crl_file, tls.client_ca_file, std::time(nullptr), crl_error);
          if (!loaded) {
            errors.push_back("listener " + listener.name + ": client_crl: " + crl_error);
          } else {
            X509_STORE* store = SSL_CTX_get_cert_store(c);
            if (X509_STORE_add_crl(store, loaded->crl.get()) != 1) {  // the store takes its own reference
              fail("cannot use client CRL " + tls.client_crl_file);
            }
            X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
          }
        }
      } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      }
      groups.emplace_back(names, ctx);
      impl->contexts.push_back(std::move(owned));
    }
    SSL_CTX* c = ctx->native_handle();
    if (SSL_CTX_use_certificate_chain_file(c, cert.cert_file.c_str()) != 1) {
      fail("cannot load certificate chain " + cert.cert_file);
      continue;
    }
    if (SSL_CTX_use_PrivateKey_file(c, cert.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      fail("cannot load private key " + cert.key_file);
      continue;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
      fail("private key " + cert.key_file + " does not match certificate " + cert.cert_file);
      continue;
    }
    if (tls.ocsp_stapling) {
      // The context's current certificate is the one just loaded; its chain's first entry must be its issuer.
      X509* leaf = SSL_CTX_get0_certificate(c);
      STACK_OF(X509)* chain = nullptr;
      SSL_CTX_get0_chain_certs(c, &chain);
      X509* issuer = (chain != nullptr && sk_X509_num(chain) > 0) ? sk_X509_value(chain, 0) : nullptr;
      if (leaf == nullptr || issuer == nullptr || X509_check_issued(issuer, leaf) != X509_V_OK) {
        errors.push_back("listener " + listener.name + ": ocsp_stapling: " + cert.cert_file +
                         " must hold the issuer certificate right after the leaf (the OCSP request names it)");
        continue;
      }
      std::string url = tls.ocsp_responder;
      if (url.empty()) {
        url = ocsp_responder_url(leaf).value_or("");
      }
      if (url.empty()) {
        errors.push_back("listener " + listener.name + ": ocsp_stapling: " + cert.cert_file +
                         " names no OCSP responder (authorityInfoAccess); set tls.ocsp_responder");
        continue;
      }
      if (url.rfind("http://", 0) != 0) {
        errors.push_back("listener " + listener.name + ": ocsp_stapling: responder " + url + " of " + cert.cert_file +
                         " is not http:// (only plain-HTTP responders are supported)");
        continue;
      }
      if (impl->stapler) {
        impl->staple_keys.emplace(leaf, impl->stapler->watch(leaf, issuer, url));
      }
      SSL_CTX_set_tlsext_status_cb(c, &Impl::status_cb);
      SSL_CTX_set_tlsext_status_arg(c, impl.get());
    }
  }
  if (impl->contexts.empty() && errors.size() == errors_before) {
    errors.push_back("listener " + listener.name + ": no usable certificate");
  }
  if (errors.size() != errors_before) {
    return nullptr;
  }
  for (const auto& [names, ctx] : groups) {
    for (const auto& n : names) {
      impl->by_name.emplace(n, ctx);  // first certificate set wins for a name served twice
    }
  }
  for (auto& ctx : impl->contexts) {
    SSL_CTX_set_tlsext_servername_callback(ctx->native_handle(), &Impl::servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx->native_handle(), impl.get());
  }
  return std::unique_ptr<ServerTls>(new ServerTls(std::move(impl)));
}

// ---------------------------------------------------------------------------------------------------------
// UpstreamTls

struct UpstreamTls::Impl {
  ssl::context ctx{ssl::context::tls_client};
  std::string server_name;
  bool verify = true;
};

UpstreamTls::UpstreamTls(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UpstreamTls::~UpstreamTls() = default;
ssl::context& UpstreamTls::context() noexcept { return impl_->ctx; }

std::unique_ptr<UpstreamTls> UpstreamTls::create(const config::UpstreamConfig& up, std::vector<std::string>& errors) {
  auto impl = std::make_unique<Impl>();
  const std::size_t before = errors.size();
  auto fail = [&](std::string what) {
    std::string e = crypto::drain_openssl_errors();
    errors.push_back("upstream " + up.name + ": " + what + (e.empty() ? "" : ": " + e));
  };
  SSL_CTX* c = impl->ctx.native_handle();
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(c, kGroups) != 1) {
    fail("cannot set cipher suites");
  }
  impl->verify = up.tls.verify;
  impl->server_name = up.tls.server_name;
  if (up.tls.verify) {
    const int ok = up.tls.ca_file.empty() ? SSL_CTX_set_default_verify_paths(c)
                                          : SSL_CTX_load_verify_locations(c, up.tls.ca_file.c_str(), nullptr);
    if (ok != 1) {
      fail("cannot load CA bundle " + (up.tls.ca_file.empty() ? std::string("(system)") : up.tls.ca_file));
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  if (!up.tls.cert_file.empty()) {
    if (auto problem = crypto::private_key_file_problem(up.tls.key_file)) {
      errors.push_back("upstream " + up.name + ": " + *problem);
    } else if (SSL_CTX_use_certificate_chain_file(c, up.tls.cert_file.c_str()) != 1 ||
               SSL_CTX_use_PrivateKey_file(c, up.tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(c) != 1) {
      fail("cannot load client certificate " + up.tls.cert_file + " / key " + up.tls.key_file);
    }
  }
  if (errors.size() != before) {
    return nullptr;
  }
  return std::unique_ptr<UpstreamTls>(new UpstreamTls(std::move(impl)));
}

bool UpstreamTls::prepare(SSL* s, const std::string& target_host) const {
  const std::string& name = impl_->server_name.empty() ? target_host : impl_->server_name;
  unsigned char buf[16];
  const bool is_ip = inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
  if (!is_ip && SSL_set_tlsext_host_name(s, name.c_str()) != 1) {
    return false;
  }
  if (impl_->verify) {
    if (is_ip) {
      return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name.c_str()) == 1;
    }
    return SSL_set1_host(s, name.c_str()) == 1;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------

TlsInfo describe_tls(SSL* s) {
  TlsInfo info;
  info.version = SSL_get_version(s);
  info.cipher = SSL_get_cipher_name(s);
  if (const char* sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name)) {
    info.sni = sni;
  }
  info.resumed = SSL_session_reused(s) == 1;
  X509* peer = SSL_get0_peer_certificate(s);
  if (peer != nullptr && SSL_get_verify_result(s) == X509_V_OK) {
    PeerIdentity id;
    id.subject = crypto::subject_rfc2253(peer);
    id.fingerprint_sha256 = crypto::sha256_fingerprint(peer);
    if (auto* gens = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr))) {
      for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING* s5 = nullptr;
        std::vector<std::string>* dst = nullptr;
        if (g->type == GEN_DNS) { s5 = g->d.dNSName; dst = &id.dns; }
        if (g->type == GEN_URI) { s5 = g->d.uniformResourceIdentifier; dst = &id.uris; }
        if (g->type == GEN_EMAIL) { s5 = g->d.rfc822Name; dst = &id.emails; }
        if (dst != nullptr) {
          dst->emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s5)),
                            static_cast<std::size_t>(ASN1_STRING_length(s5)));
        }
      }
      GENERAL_NAMES_free(gens);
    }
    info.peer = std::move(id);
  }
  return info;
}

}  // namespace gerbang::gateway
