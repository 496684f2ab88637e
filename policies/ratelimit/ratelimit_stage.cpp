#include "policies/ratelimit/ratelimit_stage.hpp"

#include <algorithm>
#include <charconv>

#include "policies/ratelimit/token_bucket.hpp"
#include "policies/ratelimit/worker_buckets.hpp"
#include "policies/request_context.hpp"

namespace gerbang::policies::ratelimit {

using std::chrono::milliseconds;

// ---- WorkerBuckets ----

WorkerBuckets::WorkerBuckets(const RateLimitBackendConfig& config, std::unique_ptr<CounterBackend> shared,
                             std::optional<KeyTableSeed> seed, NowFn now)
    : config_(config), shared_(std::move(shared)), seed_(seed), now_(std::move(now)) {}

KeyTable& WorkerBuckets::table() {
  if (!table_) {
    table_ = std::make_unique<KeyTable>(config_.max_keys, seed_);
  }
  return *table_;
}

void WorkerBuckets::warn(std::string_view message) {
  const auto t = now();
  if (last_warn_ && t - *last_warn_ < kWarnInterval) {
    ++suppressed_warnings_;
    return;
  }
  last_warn_ = t;
  if (warn_) {
    if (suppressed_warnings_ > 0) {
      std::string m(message);
      m += " (";
      m += std::to_string(suppressed_warnings_);
      m += " similar warnings suppressed)";
      warn_(m);
    } else {
      warn_(message);
    }
  }
  suppressed_warnings_ = 0;
}

void destroy(WorkerBuckets* p) noexcept { delete p; }

WorkerBucketsPtr make_worker_buckets(const RateLimitBackendConfig& backend, std::unique_ptr<CounterBackend> shared) {
  return WorkerBucketsPtr(new WorkerBuckets(backend, std::move(shared)));
}

// ---- the stage ----

namespace {

struct Outcome {
  bool allowed = false;
  std::uint64_t remaining = 0;
  milliseconds retry_after{0};
  milliseconds reset{0};
};

milliseconds ceil_ms(std::chrono::nanoseconds d) { return std::chrono::ceil<milliseconds>(d); }

std::uint64_t ceil_seconds(milliseconds d) {
  return d.count() <= 0 ? 0 : static_cast<std::uint64_t>((d.count() + 999) / 1000);
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// An RFC 8941 sf-string: printable ASCII only, with `"` and `\` escaped; anything else becomes '?'.
std::string sf_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c >= 0x20 && c <= 0x7e) {
      out += c;
    } else {
      out += '?';
    }
  }
  out += '"';
  return out;
}

std::string default_rule_name(const RateLimitRule& r) {
  std::string name;
  append_uint(name, r.requests);
  name += '/';
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(r.period.count(), 1));
  struct Unit {
    std::uint64_t ms;
    const char* suffix;
  };
  for (const Unit u : {Unit{3'600'000, "h"}, Unit{60'000, "min"}, Unit{1000, "s"}, Unit{1, "ms"}}) {
    if (ms % u.ms == 0) {
      if (ms != u.ms) {
        append_uint(name, ms / u.ms);
      }
      name += u.suffix;
      break;
    }
  }
  return name;
}

// Appends a length-prefixed field so that no choice of values can make two different keys equal.
void append_field(std::string& out, char tag, std::string_view value) {
  out += tag;
  append_uint(out, value.size());
  out += ':';
  out += value;
}

struct CompiledRule {
  std::size_t index = 0;
  std::vector<RateKeyPart> parts;
  std::uint64_t requests = 1;
  milliseconds period{1000};
  std::uint64_t burst = 1;
  BucketLimit limit;
  std::string sf_name;  // quoted policy name
};

class RateLimitStage final : public Stage {
 public:
  RateLimitStage(const std::string& route_name, std::size_t route_index, const std::vector<RateLimitRule>& rules,
                 const RateLimitBackendConfig& backend)
      : redis_(backend.backend == RateLimitBackendConfig::Backend::redis),
        on_failure_(backend.on_failure) {
    key_prefix_ = "gerbang:rl:";
    append_field(key_prefix_, 'R', route_name);
    key_prefix_ += ':';
    policy_header_ = "RateLimit-Policy: ";
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      CompiledRule c;
      c.index = i;
      c.parts = r.key;
      c.requests = std::max<std::uint64_t>(r.requests, 1);
      c.period = std::max(r.period, milliseconds{1});
      c.burst = r.burst == 0 ? c.requests : r.burst;
      c.limit = BucketLimit::make(c.requests, c.period, c.burst);
      c.sf_name = sf_string(r.name.empty() ? default_rule_name(r) : r.name);
      if (i > 0) {
        policy_header_ += ", ";
      }
      policy_header_ += c.sf_name;
      policy_header_ += ";q=";
      append_uint(policy_header_, c.requests);
      policy_header_ += ";w=";
      append_uint(policy_header_, std::max<std::uint64_t>(ceil_seconds(c.period), 1));
      rules_.push_back(std::move(c));
    }
    policy_header_ += "\r\n";
  }

  std::string_view name() const noexcept override { return "ratelimit"; }
  bool is_async() const noexcept override { return redis_; }

  Verdict on_request_head(RequestContext& ctx) const override {
    WorkerBuckets* wb = buckets_of(ctx);
    if (wb == nullptr) {
      ctx.deny_detail = "ratelimit: no per-worker state in worker_slot";
      return Verdict::deny(Reason::gateway_internal_error);
    }
    return decide_locally(ctx, *wb);
  }

  boost::asio::awaitable<Verdict> on_request_head_async(RequestContext& ctx) const override {
    WorkerBuckets* wb = buckets_of(ctx);
    if (wb == nullptr) {
      ctx.deny_detail = "ratelimit: no per-worker state in worker_slot";
      co_return Verdict::deny(Reason::gateway_internal_error);
    }
    CounterBackend* backend = wb->shared();
    if (!redis_ || backend == nullptr) {
      co_return decide_locally(ctx, *wb);
    }
    if (!backend->healthy()) {
      co_return backend_failed(ctx, *wb);  // reconnecting: do not wait for a timeout on every request
    }
    std::string key;  // owned by this frame: the worker's scratch may be used by others while we wait
    Outcome chosen;
    const CompiledRule* chosen_rule = nullptr;
    for (const auto& rule : rules_) {
      build_key(key, rule, ctx);
      const std::optional<SharedDecision> d = co_await backend->take(key, rule.requests, rule.period, rule.burst);
      if (!d) {
        co_return backend_failed(ctx, *wb);
      }
      wb->stats().shared_decisions.inc();
      const Outcome o{d->allowed, d->remaining, d->retry_after, d->reset};
      if (!o.allowed) {
        co_return deny(ctx, *wb, rule, o);
      }
      if (chosen_rule == nullptr || more_restrictive(o, chosen)) {
        chosen = o;
        chosen_rule = &rule;
      }
    }
    co_return allow(ctx, *wb, chosen_rule, chosen);
  }

 private:
  static WorkerBuckets* buckets_of(const RequestContext& ctx) {
    // One cross-cast per request (tens of nanoseconds); the slot holds the PolicySet's WorkerState.
    auto* state = static_cast<WorkerState*>(ctx.worker_slot);
    auto* holder = dynamic_cast<HasWorkerBuckets*>(state);
    return holder != nullptr ? &holder->buckets() : nullptr;
  }

  static bool more_restrictive(const Outcome& a, const Outcome& b) {
    return a.remaining < b.remaining || (a.remaining == b.remaining && a.reset > b.reset);
  }

  void build_key(std::string& out, const CompiledRule& rule, const RequestContext& ctx) const {
    out = key_prefix_;
    append_uint(out, rule.index);
    for (const RateKeyPart part : rule.parts) {
      out += ':';
      switch (part) {
        case RateKeyPart::consumer:
          if (ctx.principal.consumer.empty()) {
            append_field(out, 'a', ctx.request.client.text);  // anonymous: the client address stands in
          } else {
            append_field(out, 'c', ctx.principal.consumer);
          }
          break;
        case RateKeyPart::client_ip:
          append_field(out, 'i', ctx.request.client.text);
          break;
        case RateKeyPart::route:
          append_field(out, 'r', ctx.request.route);
          break;
      }
    }
  }

  Verdict decide_locally(RequestContext& ctx, WorkerBuckets& wb) const {
    KeyTable& table = wb.table();
    const Clock::time_point now = wb.now();
    std::string& key = wb.key_scratch();
    std::vector<KeyHash>& hashes = wb.hash_scratch();
    hashes.clear();
    Outcome chosen;
    const CompiledRule* chosen_rule = nullptr;
    const CompiledRule* denied_rule = nullptr;
    Outcome denied;
    // Check every rule first; consume only if all allow.
    for (const auto& rule : rules_) {
      build_key(key, rule, ctx);
      const KeyHash h = table.hash(key);
      hashes.push_back(h);
      const BucketDecision b = table.get(h).check(rule.limit, now);
      const Outcome o{b.allowed, b.remaining, ceil_ms(b.retry_after), ceil_ms(b.reset)};
      if (!o.allowed) {
        if (denied_rule == nullptr || o.retry_after > denied.retry_after) {
          denied = o;
          denied_rule = &rule;
        }
      } else if (chosen_rule == nullptr || more_restrictive(o, chosen)) {
        chosen = o;
        chosen_rule = &rule;
      }
    }
    if (denied_rule != nullptr) {
      return deny(ctx, wb, *denied_rule, denied);
    }
    for (std::size_t i = 0; i < rules_.size(); ++i) {
      // find(), not get(): never evicts, so a route with more rules than max_keys cannot corrupt anything.
      if (TokenBucket* b = table.find(hashes[i])) {
        b->commit(rules_[i].limit, now);
      }
    }
    return allow(ctx, wb, chosen_rule, chosen);
  }

  Verdict backend_failed(RequestContext& ctx, WorkerBuckets& wb) const {
    wb.stats().backend_failures.inc();
    if (on_failure_ == RateLimitBackendConfig::OnFailure::deny) {
      wb.stats().backend_unavailable.inc();
      ctx.deny_detail = "ratelimit: shared counter backend unavailable (on_failure: deny)";
      return Verdict::deny(Reason::ratelimit_backend_unavailable);
    }
    wb.stats().degraded.inc();
    wb.warn("ratelimit: shared counter backend unavailable; deciding with per-worker limits (on_failure: local)");
    return decide_locally(ctx, wb);
  }

  void append_ratelimit(std::string& out, const CompiledRule& rule, std::uint64_t remaining,
                        std::uint64_t t_seconds) const {
    out += policy_header_;
    out += "RateLimit: ";
    out += rule.sf_name;
    out += ";r=";
    append_uint(out, remaining);
    out += ";t=";
    append_uint(out, t_seconds);
    out += "\r\n";
  }

  Verdict allow(RequestContext& ctx, WorkerBuckets& wb, const CompiledRule* rule, const Outcome& o) const {
    wb.stats().allowed.inc();
    ctx.response_headers.clear();
    if (rule != nullptr) {
      append_ratelimit(ctx.response_headers, *rule, o.remaining, ceil_seconds(o.reset));
    }
    return Verdict::next();
  }

  Verdict deny(RequestContext& ctx, WorkerBuckets& wb, const CompiledRule& rule, const Outcome& o) const {
    wb.stats().denied.inc();
    const std::uint64_t retry = std::max<std::uint64_t>(ceil_seconds(o.retry_after), 1);
    std::string headers;
    headers.reserve(policy_header_.size() + 64);
    headers += "Retry-After: ";
    append_uint(headers, retry);
    headers += "\r\n";
    append_ratelimit(headers, rule, 0, retry);
    ctx.deny_detail = "ratelimit: over the limit";
    return Verdict::deny(Reason::ratelimit_exceeded, std::move(headers));
  }

  bool redis_;
  RateLimitBackendConfig::OnFailure on_failure_;
  std::string key_prefix_;     // "gerbang:rl:R<len>:<route>:"
  std::string policy_header_;  // "RateLimit-Policy: ...\r\n", the same for every response of the route
  std::vector<CompiledRule> rules_;
};

}  // namespace

std::unique_ptr<Stage> make_ratelimit_stage(const std::string& route_name, std::size_t route_index,
                                            const std::vector<RateLimitRule>& rules,
                                            const RateLimitBackendConfig& backend) {
  if (rules.empty()) {
    return nullptr;
  }
  return std::make_unique<RateLimitStage>(route_name, route_index, rules, backend);
}

}  // namespace gerbang::policies::ratelimit
