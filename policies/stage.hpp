// The policy stage contract (DESIGN.md §2): stages never call each other; they read the RequestContext and
// write only their own slot in it. A denial stops the chain; audit and the access log still run.
//
// THREAD SAFETY: a Stage is built once per configuration generation and shared by every worker; its methods
// must be const-safe under concurrent calls (per-request state lives in the context, per-worker state — such
// as rate-limit buckets — lives in the context's `worker_slot`, see ratelimit). No exceptions on this path.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <string>
#include <string_view>

#include "policies/reason.hpp"

namespace gerbang::policies {

struct RequestContext;

struct Verdict {
  enum class Action : std::uint8_t { next, respond, close } action = Action::next;
  Reason reason = Reason::none;   // respond/close: why (drives status, problem type, logs, metrics, audit)
  std::string headers;            // respond: extra response lines "Name: value\r\n" (WWW-Authenticate, Retry-After)

  static Verdict next() { return {}; }
  static Verdict deny(Reason r, std::string extra_headers = {}) {
    return Verdict{Action::respond, r, std::move(extra_headers)};
  }
  bool is_next() const noexcept { return action == Action::next; }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const noexcept = 0;  // "authn", "ratelimit", ... (metrics label)
  // Synchronous, non-blocking decision on the request head.
  virtual Verdict on_request_head(RequestContext& ctx) const = 0;
  // Stages that need I/O (a Redis-backed limiter) return true here and implement the awaitable variant; the
  // gateway then co_awaits it instead of calling on_request_head (Envoy's StopIteration + continueDecoding).
  virtual bool is_async() const noexcept { return false; }
  virtual boost::asio::awaitable<Verdict> on_request_head_async(RequestContext& ctx) const;
};

}  // namespace gerbang::policies
