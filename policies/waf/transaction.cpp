#include "policies/waf/transaction.hpp"

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include <charconv>
#include <new>

namespace gerbang::policies::waf {
namespace {

// The engine's calls may throw (std::bad_alloc, or a std::exception from an operator); none may escape.
template <class F>
bool guarded(F&& f) noexcept {
  try {
    return f();
  } catch (...) {
    return false;
  }
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

constexpr std::size_t kMaxMessage = 256;  // per match, for logs and the audit record
constexpr std::size_t kMaxData = 256;

std::string clip(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n); }

// ModSecurity 3.0.x runs `drop` as a plain deny (403) and tells the connector nothing more, so a drop cannot
// be told apart. Like NGINX (and its ModSecurity connector), status 444 means "close without answering".
constexpr int kCloseStatus = 444;

}  // namespace

std::unique_ptr<Transaction> Transaction::create(std::shared_ptr<const RuleSet> rules, std::string_view request_id) {
  if (!rules || rules->native() == nullptr || rules->modsec() == nullptr) return nullptr;
  std::unique_ptr<Transaction> t(new (std::nothrow) Transaction());
  if (!t) return nullptr;
  t->matches_.reserve(4);
  const bool ok = guarded([&] {
    std::string id(request_id);  // the engine copies it; it wants a mutable, NUL-terminated buffer
    if (id.empty()) {
      t->txn_ = std::make_unique<modsecurity::Transaction>(rules->modsec(), rules->native(), t.get());
    } else {
      t->txn_ = std::make_unique<modsecurity::Transaction>(rules->modsec(), rules->native(), id.data(), t.get());
    }
    return t->txn_ != nullptr;
  });
  if (!ok) return nullptr;
  t->rules_ = std::move(rules);
  return t;
}

Transaction::~Transaction() {
  try {
    txn_.reset();
  } catch (...) {
  }
}

bool Transaction::process_connection(std::string_view client_ip, int client_port, std::string_view server_ip,
                                     int server_port) {
  return guarded([&] {
    const std::string c(client_ip), s(server_ip);
    const bool r = txn_->processConnection(c.c_str(), client_port, s.c_str(), server_port) != 0;
    collect();
    return r;
  });
}

bool Transaction::process_uri(std::string_view uri, std::string_view method, std::string_view http_version) {
  return guarded([&] {
    const std::string u(uri), m(method), v(http_version);
    const bool r = txn_->processURI(u.c_str(), m.c_str(), v.c_str()) != 0;
    collect();
    return r;
  });
}

bool Transaction::add_request_header(std::string_view name, std::string_view value) {
  return guarded([&] {
    return txn_->addRequestHeader(bytes(name), name.size(), bytes(value), value.size()) != 0;
  });
}

bool Transaction::process_request_headers() {
  return guarded([&] {
    const bool r = txn_->processRequestHeaders() != 0;
    collect();
    return r;
  });
}

Transaction::Append Transaction::append_request_body(std::span<const std::byte> chunk) {
  if (chunk.empty()) return Append::ok;
  if (request_truncated_) return Append::over_limit;
  const std::uint64_t limit = rules_->config().body_inspection_limit;
  const bool crosses = request_fed_ + chunk.size() > limit;
  Append result = Append::error;
  guarded([&] {
    const int r = txn_->appendRequestBody(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
    // The engine answers 0 exactly when it cut the chunk at the limit (ProcessPartial).
    if (r != 0) result = crosses ? Append::error : Append::ok;
    else result = crosses ? Append::over_limit : Append::error;
    return true;
  });
  if (result == Append::over_limit) {
    request_truncated_ = true;
    request_fed_ = limit;
  } else if (result == Append::ok) {
    request_fed_ += chunk.size();
  }
  return result;
}

bool Transaction::process_request_body() {
  return guarded([&] {
    const bool r = txn_->processRequestBody() != 0;
    collect();
    return r;
  });
}

bool Transaction::add_response_header(std::string_view name, std::string_view value) {
  return guarded([&] {
    return txn_->addResponseHeader(bytes(name), name.size(), bytes(value), value.size()) != 0;
  });
}

bool Transaction::process_response_headers(int status, std::string_view protocol) {
  return guarded([&] {
    const bool r = txn_->processResponseHeaders(status, std::string(protocol)) != 0;
    collect();
    return r;
  });
}

Transaction::Append Transaction::append_response_body(std::span<const std::byte> chunk) {
  if (chunk.empty()) return Append::ok;
  if (response_truncated_) return Append::over_limit;
  const std::uint64_t limit = rules_->config().response_inspection_limit;
  const bool crosses = response_fed_ + chunk.size() > limit;
  Append result = Append::error;
  guarded([&] {
    const int r = txn_->appendResponseBody(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
    if (r != 0) result = crosses ? Append::over_limit : Append::ok;  // a type not inspected also answers 1
    else result = crosses ? Append::over_limit : Append::error;
    return true;
  });
  if (result == Append::over_limit) {
    response_truncated_ = true;
    response_fed_ = limit;
  } else if (result == Append::ok) {
    response_fed_ += chunk.size();
  }
  return result;
}

bool Transaction::process_response_body() {
  return guarded([&] {
    const bool r = txn_->processResponseBody() != 0;
    collect();
    return r;
  });
}

bool Transaction::process_logging() {
  return guarded([&] {
    const bool r = txn_->processLogging() != 0;
    collect();
    return r;
  });
}

std::optional<Intervention> Transaction::poll() {
  modsecurity::ModSecurityIntervention it;
  modsecurity::intervention::clean(&it);
  std::optional<Intervention> out;
  try {
    if (txn_->intervention(&it)) {
      Intervention i;
      i.status = it.status;
      i.disruptive = it.disruptive != 0;
      if (it.url != nullptr) i.url = it.url;
      if (it.log != nullptr) i.log = it.log;
      i.drop = it.status == kCloseStatus;
      out = std::move(i);
    }
  } catch (...) {
    // Fail closed: an intervention we could not read is a deny.
    Intervention i;
    i.status = 500;
    i.disruptive = true;
    out = std::move(i);
  }
  modsecurity::intervention::free(&it);
  return out;
}

void Transaction::collect() {
  const auto& list = txn_->m_rulesMessages;
  if (list.size() <= seen_messages_) return;
  auto it = list.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(seen_messages_));
  for (; it != list.end(); ++it) {
    Match m;
    m.rule_id = it->m_ruleId > 0 ? static_cast<std::uint32_t>(it->m_ruleId) : 0;
    m.severity = it->m_severity;
    m.disruptive = it->m_isDisruptive;
    m.phase = it->m_phase;
    m.message = clip(it->m_message, kMaxMessage);
    m.data = clip(it->m_data, kMaxData);
    matches_.push_back(std::move(m));
  }
  seen_messages_ = list.size();
}

std::optional<int> Transaction::anomaly_score() const {
  try {
    auto* tx = txn_->m_collections.m_tx_collection;
    if (tx == nullptr) return std::nullopt;
    const std::unique_ptr<std::string> v = tx->resolveFirst("anomaly_score");
    if (!v) return std::nullopt;
    int n = 0;
    const auto r = std::from_chars(v->data(), v->data() + v->size(), n);
    if (r.ec != std::errc{}) return std::nullopt;
    return n;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace gerbang::policies::waf
