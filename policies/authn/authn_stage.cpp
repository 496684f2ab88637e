#include "policies/authn/authn_stage.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "crypto/keys.hpp"
#include "crypto/openssl.hpp"
#include "crypto/sodium.hpp"
#include "policies/authn/api_keys.hpp"
#include "policies/authn/identity_assertion.hpp"
#include "policies/authn/jwt.hpp"
#include "policies/text.hpp"

namespace gerbang::policies::authn {
namespace {

struct Consumer {
  std::string id;
  std::vector<std::string> groups;
  std::string groups_joined;
  std::string department;
};

struct MtlsEntry {
  MtlsMatch match;
  std::size_t consumer;
};

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& g : v) {
    if (!s.empty()) s += ',';
    s += g;
  }
  return s;
}

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad() || s.str().size() > 64 * 1024) return std::nullopt;
  return s.str();
}

// The identity signing key: a PKCS#8 PEM Ed25519 key (`openssl genpkey -algorithm ed25519`), a signed-note
// signer key "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>", or a bare standard-base64 32-byte seed.
std::optional<crypto::Ed25519KeyPair> load_signing_key(const std::string& path, std::string& error) {
  if (auto problem = crypto::private_key_file_problem(path)) {
    error = *problem;
    return std::nullopt;
  }
  auto text = read_small_file(path);
  if (!text) {
    error = "cannot read identity signing key " + path;
    return std::nullopt;
  }
  crypto::Ed25519Seed seed;
  const std::string_view t = trim(*text);
  bool ok = false;
  if (t.starts_with("-----BEGIN")) {
    auto bio = crypto::memory_bio(t);
    crypto::EvpPkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    std::size_t len = seed.size();
    ok = pkey && EVP_PKEY_get_id(pkey.get()) == EVP_PKEY_ED25519 &&
         EVP_PKEY_get_raw_private_key(pkey.get(), seed.data(), &len) == 1 && len == seed.size();
    ERR_clear_error();
  } else if (t.starts_with("PRIVATE+KEY+")) {
    // PRIVATE+KEY+<name>+<hex id>+<base64>: the key is after the fourth '+' (base64 itself may hold '+').
    std::size_t at = 0;
    for (int i = 0; i < 4 && at != std::string_view::npos; ++i) at = t.find('+', at == 0 ? 0 : at + 1);
    auto raw = at == std::string_view::npos ? std::nullopt : crypto::base64_decode(t.substr(at + 1));
    if (raw && raw->size() == 33 && (*raw)[0] == 0x01) {
      std::copy(raw->begin() + 1, raw->end(), seed.data());
      ok = true;
    }
    if (raw) sodium_memzero(raw->data(), raw->size());
  } else {
    auto raw = crypto::base64_decode(t);
    if (raw && raw->size() == 32) {
      std::copy(raw->begin(), raw->end(), seed.data());
      ok = true;
    }
    if (raw) sodium_memzero(raw->data(), raw->size());
  }
  if (text) sodium_memzero(text->data(), text->size());
  if (!ok) {
    error = "identity signing key " + path +
            " is not an Ed25519 key (PKCS#8 PEM, \"PRIVATE+KEY+...\" signer key, or base64 of a 32-byte seed)";
    return std::nullopt;
  }
  return crypto::ed25519_from_seed(seed);
}

}  // namespace

class AuthnIndex {
 public:
  std::vector<Consumer> consumers;
  std::vector<MtlsEntry> mtls;
  // Each mTLS entry is indexed under exactly one of its fields (fingerprint, else subject, else URI, DNS,
  // email SAN); a lookup visits only the entries filed under the certificate's own values.
  std::unordered_map<std::string, std::vector<std::size_t>> by_fingerprint, by_subject, by_uri, by_dns, by_email;
  ApiKeyIndex api_keys;
  std::unique_ptr<JwtAuthenticator> jwt;
  std::unordered_map<std::string, std::size_t> by_jwt_subject;  // issuer name + '\0' + sub → consumer
  std::string api_key_header;
  std::optional<crypto::Ed25519KeyPair> signer;

  // Lowest consumer index among the entries whose every given field matches the certificate.
  std::optional<std::size_t> match_cert(const PeerCertificate& cert) const {
    std::optional<std::size_t> best;
    auto consider = [&](const std::unordered_map<std::string, std::vector<std::size_t>>& map, const std::string& key) {
      auto it = map.find(key);
      if (it == map.end()) return;
      for (std::size_t e : it->second) {
        if (all_match(mtls[e].match, cert) && (!best || mtls[e].consumer < *best)) best = mtls[e].consumer;
      }
    };
    consider(by_fingerprint, cert.fingerprint_sha256);
    consider(by_subject, cert.subject);
    for (const auto& u : cert.uris) consider(by_uri, u);
    for (const auto& d : cert.dns) consider(by_dns, d);
    for (const auto& m : cert.emails) consider(by_email, m);
    return best;
  }

 private:
  static bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  static bool all_match(const MtlsMatch& m, const PeerCertificate& c) {
    return (m.fingerprint_sha256.empty() || m.fingerprint_sha256 == c.fingerprint_sha256) &&
           (m.subject.empty() || m.subject == c.subject) && (m.san_uri.empty() || contains(c.uris, m.san_uri)) &&
           (m.san_dns.empty() || contains(c.dns, m.san_dns)) && (m.san_email.empty() || contains(c.emails, m.san_email));
  }
};

std::shared_ptr<const AuthnIndex> build_authn_index(const std::vector<ConsumerConfig>& consumers,
                                                    const AuthConfig& auth, const IdentityConfig& identity,
                                                    std::vector<std::string>& errors) {
  auto idx = std::make_shared<AuthnIndex>();
  const std::size_t before = errors.size();
  idx->api_key_header = auth.api_key_header;

  std::unordered_map<std::string, std::size_t> issuer_by_name;
  for (std::size_t i = 0; i < auth.jwt_issuers.size(); ++i) issuer_by_name.emplace(auth.jwt_issuers[i].name, i);
  if (!auth.jwt_issuers.empty()) {
    idx->jwt = JwtAuthenticator::create(auth.jwt_issuers, errors);
  }

  for (std::size_t ci = 0; ci < consumers.size(); ++ci) {
    const auto& c = consumers[ci];
    const std::string where = "consumers[" + std::to_string(ci) + "] (" + c.id + "): ";
    idx->consumers.push_back(Consumer{c.id, c.groups, join(c.groups), c.department});
    for (const auto& m : c.mtls) {
      const std::size_t e = idx->mtls.size();
      idx->mtls.push_back(MtlsEntry{m, ci});
      if (!m.fingerprint_sha256.empty()) idx->by_fingerprint[m.fingerprint_sha256].push_back(e);
      else if (!m.subject.empty()) idx->by_subject[m.subject].push_back(e);
      else if (!m.san_uri.empty()) idx->by_uri[m.san_uri].push_back(e);
      else if (!m.san_dns.empty()) idx->by_dns[m.san_dns].push_back(e);
      else if (!m.san_email.empty()) idx->by_email[m.san_email].push_back(e);
      else errors.push_back(where + "an mtls match needs at least one field");
    }
    for (const auto& k : c.api_keys) {
      std::string error;
      if (!idx->api_keys.add(k.id, k.hash, ci, error)) errors.push_back(where + error);
    }
    for (const auto& j : c.jwt) {
      if (!issuer_by_name.contains(j.issuer)) {
        errors.push_back(where + "jwt credential names unknown issuer \"" + j.issuer + "\"");
        continue;
      }
      if (!idx->by_jwt_subject.emplace(j.issuer + '\0' + j.subject, ci).second)
        errors.push_back(where + "jwt subject \"" + j.subject + "\" of issuer \"" + j.issuer +
                         "\" already belongs to another consumer");
    }
  }

  if (!identity.signing_key_file.empty()) {
    std::string error;
    idx->signer = load_signing_key(identity.signing_key_file, error);
    if (!idx->signer) errors.push_back("identity.signing_key: " + error);
  }
  if (errors.size() != before) return nullptr;
  return idx;
}

namespace {

enum class Method : std::uint8_t { mtls, api_key, jwt };

class AuthnStage final : public Stage {
 public:
  AuthnStage(std::shared_ptr<const AuthnIndex> index, const RouteAuthConfig& cfg)
      : index_(std::move(index)), anonymous_(cfg.anonymous), api_key_in_query_(cfg.api_key_in_query) {
    for (const auto& m : cfg.methods) {
      if (m == "mtls") methods_.push_back(Method::mtls);
      else if (m == "api_key") methods_.push_back(Method::api_key);
      else if (m == "jwt") methods_.push_back(Method::jwt);
    }
    for (auto m : methods_) {
      if (m == Method::jwt) challenges_ += "WWW-Authenticate: Bearer realm=\"gerbang\"\r\n";
      if (m == Method::api_key)
        challenges_ += "WWW-Authenticate: ApiKey realm=\"gerbang\", header=\"" + index_->api_key_header + "\"\r\n";
    }
    for (auto m : methods_) {
      if (m == Method::jwt)
        invalid_challenges_ += "WWW-Authenticate: Bearer realm=\"gerbang\", error=\"invalid_token\"\r\n";
      if (m == Method::api_key)
        invalid_challenges_ += "WWW-Authenticate: ApiKey realm=\"gerbang\", header=\"" + index_->api_key_header + "\"\r\n";
    }
  }

  std::string_view name() const noexcept override { return "authn"; }

  Verdict on_request_head(RequestContext& ctx) const override {
    const RequestView& req = ctx.request;
    bool presented = false;
    std::string_view why;
    for (const Method m : methods_) {
      switch (m) {
        case Method::mtls:
          if (req.client_cert != nullptr) {
            presented = true;
            if (auto c = index_->match_cert(*req.client_cert)) {
              succeed(ctx, AuthMethod::mtls, *c, req.client_cert->fingerprint_sha256, {});
              return Verdict::next();
            }
            if (why.empty()) why = "mtls: the client certificate maps to no consumer";
          }
          break;
        case Method::api_key: {
          std::optional<std::string_view> key;
          bool ambiguous = false;
          const std::size_t n = req.header_count(index_->api_key_header);
          if (n > 1) ambiguous = true;
          if (n == 1) key = req.header(index_->api_key_header);
          if (api_key_in_query_) {
            std::size_t qn = 0;
            auto q = query_param(req.target, "api_key", qn);
            if (qn > 1 || (qn == 1 && key)) ambiguous = true;
            if (qn == 1) key = q;
          }
          if (!key && !ambiguous) break;
          presented = true;
          if (ambiguous) {
            if (why.empty()) why = "api_key: more than one key presented";
            break;
          }
          const auto r = index_->api_keys.verify(*key);
          if (r.outcome == ApiKeyIndex::Outcome::ok) {
            succeed(ctx, AuthMethod::api_key, r.consumer, {}, r.id);
            return Verdict::next();
          }
          if (why.empty())
            why = r.outcome == ApiKeyIndex::Outcome::malformed     ? "api_key: malformed key"
                  : r.outcome == ApiKeyIndex::Outcome::unknown_id ? "api_key: unknown key id"
                                                                   : "api_key: wrong secret";
          break;
        }
        case Method::jwt: {
          const std::size_t n = req.header_count("Authorization");
          if (n == 0) break;
          auto value = req.header("Authorization");
          if (n > 1) {
            presented = true;
            if (why.empty()) why = "jwt: more than one Authorization header";
            break;
          }
          auto token = bearer_token(*value);
          if (!token) break;  // another scheme (Basic, ...): not a credential for this method
          presented = true;
          if (token->empty() || index_->jwt == nullptr) {
            if (why.empty()) why = "jwt: empty bearer token";
            break;
          }
          std::string_view jwhy;
          auto v = index_->jwt->verify(*token, req.now, jwhy);
          if (!v) {
            if (why.empty()) why = jwhy;
            break;
          }
          const auto& issuer = index_->jwt->issuer(v->issuer);
          auto it = index_->by_jwt_subject.find(issuer.name + '\0' + v->subject);
          if (it != index_->by_jwt_subject.end()) {
            succeed(ctx, AuthMethod::jwt, it->second, {}, v->subject, &v->groups);
            return Verdict::next();
          }
          if (issuer.allow_unknown_subjects) {
            succeed_unknown_jwt(ctx, *v);
            return Verdict::next();
          }
          if (why.empty()) why = "jwt: subject maps to no consumer";
          break;
        }
      }
    }
    if (presented) {
      ctx.deny_detail = why;
      return Verdict::deny(Reason::authn_invalid_credential, invalid_challenges_);
    }
    if (anonymous_) {
      ctx.principal = Principal{};
      ctx.principal.method = AuthMethod::anonymous;
      write_headers(ctx, {});
      return Verdict::next();
    }
    ctx.deny_detail = "no credential presented";
    return Verdict::deny(Reason::authn_missing_credential, challenges_);
  }

 private:
  static std::optional<std::string_view> bearer_token(std::string_view v) {
    if (v.size() < 6 || !iequal(v.substr(0, 6), "Bearer")) return std::nullopt;
    if (v.size() == 6) return std::string_view{};
    if (v[6] != ' ') return std::nullopt;
    return trim(v.substr(7));
  }

  // Value of `name` in the query string; `count` = how many times it occurs.
  static std::optional<std::string_view> query_param(std::string_view target, std::string_view name, std::size_t& count) {
    count = 0;
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    if (const auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
    std::optional<std::string_view> found;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      const auto eq = pair.find('=');
      if (pair.substr(0, eq) == name) {
        ++count;
        found = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
      }
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
    return found;
  }

  void succeed(RequestContext& ctx, AuthMethod method, std::size_t consumer, std::string_view fingerprint,
               std::string_view credential_id, const std::vector<std::string>* extra_groups = nullptr) const {
    const Consumer& c = index_->consumers[consumer];
    Principal& p = ctx.principal;
    p.method = method;
    p.consumer = c.id;
    p.groups = c.groups;
    p.department = c.department;
    p.credential_id = method == AuthMethod::mtls ? std::string(fingerprint) : std::string(credential_id);
    std::string groups_joined;
    const std::string* joined = &c.groups_joined;
    if (extra_groups != nullptr && !extra_groups->empty()) {
      for (const auto& g : *extra_groups)
        if (std::find(p.groups.begin(), p.groups.end(), g) == p.groups.end()) p.groups.push_back(g);
      groups_joined = join(p.groups);
      joined = &groups_joined;
    }
    write_headers(ctx, *joined);
  }

  void succeed_unknown_jwt(RequestContext& ctx, const JwtAuthenticator::Verified& v) const {
    Principal& p = ctx.principal;
    p = Principal{};
    p.method = AuthMethod::jwt;
    p.consumer = "jwt:" + v.subject;
    p.groups = v.groups;
    p.credential_id = v.subject;
    write_headers(ctx, join(p.groups));
  }

  void write_headers(RequestContext& ctx, std::string_view groups) const {
    const Principal& p = ctx.principal;
    std::string& h = ctx.upstream_headers;
    const std::string_view fp = p.method == AuthMethod::mtls ? std::string_view(p.credential_id) : std::string_view{};
    const std::string_view method = to_string(p.method);
    auto add = [&h](std::string_view name, std::string_view value) {
      if (value.empty()) return;
      h.append(name);
      h.append(": ");
      h.append(value);
      h.append("\r\n");
    };
    add(identity_header_consumer, p.consumer);
    add(identity_header_groups, groups);
    add(identity_header_department, p.department);
    add(identity_header_auth_method, method);
    add(identity_header_cert, fp);
    if (index_->signer) {
      const std::int64_t t =
          std::chrono::duration_cast<std::chrono::seconds>(ctx.request.now.time_since_epoch()).count();
      const std::string msg = identity_canonical_string(IdentityFields{p.consumer, groups, p.department, method, fp,
                                                                       ctx.request.request_id, t, ctx.request.method,
                                                                       ctx.request.target});
      const auto sig = crypto::sign_detached(crypto::as_bytes(msg), index_->signer->secret_key);
      add(identity_header_signature, "t=" + std::to_string(t) + "; ed25519=" + crypto::base64_encode(sig));
    }
  }

  std::shared_ptr<const AuthnIndex> index_;
  std::vector<Method> methods_;
  bool anonymous_;
  bool api_key_in_query_;
  std::string challenges_;
  std::string invalid_challenges_;
};

}  // namespace

std::unique_ptr<Stage> make_authn_stage(std::shared_ptr<const AuthnIndex> index, const RouteAuthConfig& route_auth) {
  return std::make_unique<AuthnStage>(std::move(index), route_auth);
}

}  // namespace gerbang::policies::authn
