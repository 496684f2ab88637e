#include "policies/waf/waf_stage.hpp"

#include <algorithm>
#include <charconv>
#include <new>

#include "policies/waf/transaction.hpp"

namespace gerbang::policies::waf {

// Per-request WAF state, owned by RequestContext::waf_state.
class RequestState {
 public:
  std::unique_ptr<Transaction> txn;
  const WafRouteConfig* config = nullptr;  // the RuleSet's, alive as long as txn
  std::size_t recorded = 0;                // matches already copied into the context
  bool body_done = false;                  // the request body phase ran: the request decision is final
  bool response_head_done = false;
  bool response_done = false;
  bool failed = false;                     // a verdict other than next was given: feed nothing more
  Verdict denial;                          // that verdict, repeated if the gateway calls again
};

void RequestStateDeleter::operator()(RequestState* s) const noexcept { delete s; }

namespace {

using Mode = WafRouteConfig::Mode;

constexpr std::size_t kMaxMessages = 2048;  // bytes of "id msg; ..." kept per request

bool block_mode(const RequestState& st) { return st.config->mode == Mode::block; }

// Copies new matches into the context: rule ids (no duplicates) and bounded "id msg" pairs.
void record_matches(RequestContext& ctx, RequestState& st) {
  const auto& ms = st.txn->matches();
  for (; st.recorded < ms.size(); ++st.recorded) {
    const Match& m = ms[st.recorded];
    if (m.rule_id == 0) continue;
    if (std::find(ctx.waf_rule_ids.begin(), ctx.waf_rule_ids.end(), m.rule_id) == ctx.waf_rule_ids.end()) {
      ctx.waf_rule_ids.push_back(m.rule_id);
    }
    std::string& out = ctx.waf.messages;
    if (out.size() >= kMaxMessages) continue;
    if (!out.empty()) out += "; ";
    out += std::to_string(m.rule_id);
    if (!m.message.empty()) {
      out += ' ';
      out += m.message;
    }
    if (out.size() > kMaxMessages) out.resize(kMaxMessages);
  }
}

Verdict fail(RequestContext& ctx, RequestState& st, Verdict v, std::string_view detail) {
  st.failed = true;
  st.denial = v;
  ctx.deny_detail = detail;
  return v;
}

Verdict engine_error(RequestContext& ctx, RequestState& st, std::string_view detail) {
  return fail(ctx, st, Verdict::deny(Reason::waf_engine_error), detail);
}

bool safe_location(std::string_view url) {
  if (url.empty() || url.size() > 2048) return false;
  return std::none_of(url.begin(), url.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// After every engine call: record matches, turn a failed call or an intervention into a verdict.
Verdict after(RequestContext& ctx, RequestState& st, bool ok, std::string_view what_failed) {
  record_matches(ctx, st);
  if (!ok) return engine_error(ctx, st, what_failed);
  const std::optional<Intervention> i = st.txn->poll();
  if (!i || !i->disruptive) return Verdict::next();
  ctx.waf.intervened = true;
  if (!block_mode(st)) return Verdict::next();  // DetectionOnly never intervenes; belt and braces
  if (i->drop) {
    return fail(ctx, st, Verdict{Verdict::Action::close, Reason::waf_blocked, {}},
                "waf: intervention with status 444, closing the connection");
  }
  if (!i->url.empty()) {
    if (!safe_location(i->url)) return fail(ctx, st, Verdict::deny(Reason::waf_blocked), "waf: unsafe redirect URL");
    return fail(ctx, st, Verdict::deny(Reason::waf_redirect, "Location: " + i->url + "\r\n"), "waf: redirect");
  }
  return fail(ctx, st, Verdict::deny(Reason::waf_blocked), "waf: blocked by the rules (see waf messages)");
}

void record_score(RequestContext& ctx, const RequestState& st) {
  if (const auto s = st.txn->anomaly_score()) ctx.waf.anomaly_score = *s;
}

// Runs the request body phase (possibly on a cut body) and decides.
Verdict finish_body(RequestContext& ctx, RequestState& st) {
  st.body_done = true;
  const bool ok = st.txn->process_request_body();
  Verdict v = after(ctx, st, ok, "waf: process_request_body failed");
  record_score(ctx, st);
  return v;
}

RequestState* state(const RequestContext& ctx) noexcept { return ctx.waf_state.get(); }

bool over_limit_rejects(const RequestState& st) {
  return block_mode(st) && st.config->over_limit == WafRouteConfig::OverLimit::reject;
}

class WafStage final : public Stage {
 public:
  explicit WafStage(std::shared_ptr<const RuleSet> rules) : rules_(std::move(rules)) {}

  std::string_view name() const noexcept override { return "waf"; }

  Verdict on_request_head(RequestContext& ctx) const override {
    const WafRouteConfig& cfg = rules_->config();
    ctx.waf.mode = cfg.mode == Mode::block ? "block" : "detect";
    ctx.waf_state.reset(new (std::nothrow) RequestState());
    RequestState* st = ctx.waf_state.get();
    if (st == nullptr) {
      ctx.deny_detail = "waf: out of memory";
      return Verdict::deny(Reason::waf_engine_error);
    }
    st->config = &cfg;
    st->txn = Transaction::create(rules_, ctx.request.request_id);
    if (!st->txn) return engine_error(ctx, *st, "waf: cannot create a transaction");

    const RequestView& r = ctx.request;
    const std::string_view local = r.local_address.empty() ? std::string_view("0.0.0.0") : r.local_address;
    Verdict v = after(ctx, *st, st->txn->process_connection(r.client.text, r.peer_port, local, r.local_port),
                      "waf: process_connection failed");
    if (!v.is_next()) return v;
    v = after(ctx, *st, st->txn->process_uri(r.target, r.method, "1.1"), "waf: process_uri failed");
    if (!v.is_next()) return v;
    for (const HeaderField& h : r.headers) {
      if (!st->txn->add_request_header(h.name, h.value)) return engine_error(ctx, *st, "waf: add_request_header failed");
    }
    v = after(ctx, *st, st->txn->process_request_headers(), "waf: process_request_headers failed");
    if (!v.is_next()) return v;

    // Is there a body to wait for?
    const bool chunked = r.header("transfer-encoding").has_value();
    std::uint64_t length = 0;
    if (const auto cl = r.header("content-length")) {
      const auto res = std::from_chars(cl->data(), cl->data() + cl->size(), length);
      if (res.ec != std::errc{} || res.ptr != cl->data() + cl->size()) length = 0;  // the codec validated it
    }
    if (!chunked && length == 0) return finish_body(ctx, *st);
    if (length > cfg.body_inspection_limit && over_limit_rejects(*st)) {
      return fail(ctx, *st, Verdict::deny(Reason::waf_body_over_limit),
                  "waf: Content-Length over body_inspection_limit (over_limit: reject)");
    }
    return Verdict::next();
  }

 private:
  std::shared_ptr<const RuleSet> rules_;
};

}  // namespace

std::unique_ptr<Stage> make_waf_stage(Engine& engine, const WafRouteConfig& route, std::string& error) {
  error.clear();
  if (route.mode == Mode::off) return nullptr;
  auto rules = engine.rules_for(route, error);
  if (!rules) return nullptr;
  return std::make_unique<WafStage>(std::move(rules));
}

bool needs_body(const RequestContext& ctx) noexcept {
  const RequestState* st = state(ctx);
  return st != nullptr && st->txn && !st->failed && !st->body_done;
}

Verdict feed_body(RequestContext& ctx, std::span<const std::byte> chunk, bool last) {
  RequestState* st = state(ctx);
  if (st == nullptr || !st->txn) return Verdict::next();
  if (st->failed) return st->denial;
  if (st->body_done) return Verdict::next();

  const std::uint64_t limit = st->config->body_inspection_limit;
  if (st->txn->request_body_fed() + chunk.size() > limit) {
    if (over_limit_rejects(*st)) {
      return fail(ctx, *st, Verdict::deny(Reason::waf_body_over_limit),
                  "waf: body over body_inspection_limit (over_limit: reject)");
    }
    // Pass: the engine keeps the first `limit` bytes and flags INBOUND_DATA_ERROR; decide on those now.
    if (st->txn->append_request_body(chunk) != Transaction::Append::over_limit) {
      return engine_error(ctx, *st, "waf: append_request_body did not cut at the limit");
    }
    ctx.waf.body_truncated = true;
    return finish_body(ctx, *st);
  }
  if (st->txn->append_request_body(chunk) != Transaction::Append::ok) {
    return engine_error(ctx, *st, "waf: append_request_body failed");
  }
  Verdict v = after(ctx, *st, true, {});
  if (!v.is_next()) return v;
  if (last) return finish_body(ctx, *st);
  return Verdict::next();
}

bool inspects_response(const RequestContext& ctx) noexcept {
  const RequestState* st = state(ctx);
  return st != nullptr && st->txn && !st->failed && st->body_done && st->config->inspect_response;
}

Verdict on_response_head(RequestContext& ctx, int status, std::span<const HeaderField> headers) {
  if (!inspects_response(ctx)) return Verdict::next();
  RequestState& st = *ctx.waf_state;
  if (st.response_head_done) return Verdict::next();
  st.response_head_done = true;
  for (const HeaderField& h : headers) {
    if (!st.txn->add_response_header(h.name, h.value)) return engine_error(ctx, st, "waf: add_response_header failed");
  }
  return after(ctx, st, st.txn->process_response_headers(status, "HTTP 1.1"),
               "waf: process_response_headers failed");
}

Verdict on_response_body(RequestContext& ctx, std::span<const std::byte> chunk, bool last) {
  if (!inspects_response(ctx)) {
    const RequestState* st = state(ctx);
    return st != nullptr && st->failed ? st->denial : Verdict::next();
  }
  RequestState& st = *ctx.waf_state;
  if (!st.response_head_done || st.response_done) return Verdict::next();
  const Transaction::Append a = st.txn->append_response_body(chunk);
  if (a == Transaction::Append::error) return engine_error(ctx, st, "waf: append_response_body failed");
  if (a == Transaction::Append::over_limit || last) {
    st.response_done = true;
    return after(ctx, st, st.txn->process_response_body(), "waf: process_response_body failed");
  }
  return after(ctx, st, true, {});
}

void finish_request(RequestContext& ctx) noexcept {
  RequestState* st = state(ctx);
  if (st == nullptr) return;
  try {
    if (st->txn) {
      const bool ok = st->txn->process_logging();
      record_matches(ctx, *st);
      record_score(ctx, *st);
      if (!ok && ctx.deny_detail.empty()) ctx.deny_detail = "waf: process_logging failed";
    }
  } catch (...) {
    // out of memory while recording: the record stays as it was
  }
  ctx.waf_state.reset();
}

}  // namespace gerbang::policies::waf
