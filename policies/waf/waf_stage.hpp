// The WAF stage of a route: ModSecurity v3 + OWASP CRS (issue #5, DESIGN.md §2 "WAF"). The last policy stage
// before proxying.
//
// HOW THE GATEWAY CALLS IT, per request (all calls synchronous, non-blocking, never throw):
//  1. on_request_head(ctx) — as a normal Stage, after ratelimit. Creates the transaction (UNIQUE_ID =
//     ctx.request.request_id) in ctx.waf_state and feeds connection, URI (ctx.request.target, method, "1.1")
//     and every header of ctx.request.headers, then polls. When the request has no body (no
//     Transfer-Encoding, Content-Length absent or 0) it also runs the body phase, where CRS (anomaly scoring)
//     decides, so a GET is fully decided here. In block mode with over_limit: reject, a Content-Length over
//     body_inspection_limit is refused here with 413 waf.body_over_limit, before any body is read.
//  2. While needs_body(ctx): for every body chunk as it arrives, feed_body(ctx, chunk, last). The gateway keeps
//     the chunks (at most body_inspection_limit + one read buffer) and must NOT forward them upstream until
//     needs_body(ctx) turns false with a `next` verdict; then it forwards what it holds and streams the rest
//     without calling feed_body again (calling it is harmless: `next`). Past the limit with over_limit: pass
//     (or in detect mode) the first body_inspection_limit bytes are inspected, ctx.waf.body_truncated is set,
//     and the decision is made at once.
//  3. Optional response inspection (route inspect_response; inspects_response(ctx) says so): on_response_head
//     before sending the upstream's head, then on_response_body per chunk (the gateway holds the response up
//     to response_inspection_limit if it wants to be able to replace it; a denial after bytes went out can
//     only reset the connection).
//  4. finish_request(ctx) ALWAYS, when the exchange is over (denials included), before the audit record and
//     the access log: runs the logging phase, fills ctx.waf (score, messages) and ctx.waf_rule_ids, and frees
//     the transaction. reset() also frees it (without the logging phase).
//
// Verdicts: block mode + intervention → respond 403 waf.blocked; a redirect → respond 302 waf.redirect with
// "Location: <url>\r\n" in Verdict::headers; status 444 → Action::close (reason waf.blocked). Any engine
// failure → 500 waf.engine_error (fail closed, also in detect mode). Detect mode never denies on rules.
// Matched rule ids go to ctx.waf_rule_ids (in match order, without duplicates) and "id msg" pairs to
// ctx.waf.messages as they happen, so a denial by an earlier stage simply leaves them empty.
//
// THREAD SAFETY: the stage is shared by all workers and holds only the read-only RuleSet; per-request state
// lives in ctx.waf_state.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "policies/request_context.hpp"
#include "policies/stage.hpp"
#include "policies/waf/modsec_engine.hpp"
#include "policies/waf/waf_config.hpp"

namespace gerbang::policies::waf {

// Null (and `error` empty) when route.mode is off; null with `error` (the engine's message) when the rules do
// not load. Routes with equal configurations share one compiled RuleSet through `engine`.
std::unique_ptr<Stage> make_waf_stage(Engine& engine, const WafRouteConfig& route, std::string& error);

// True while the WAF still wants request body bytes before it can decide.
bool needs_body(const RequestContext& ctx) noexcept;
Verdict feed_body(RequestContext& ctx, std::span<const std::byte> chunk, bool last);

// Response phases; `next` (and no work) unless the route inspects responses and the request passed.
bool inspects_response(const RequestContext& ctx) noexcept;
Verdict on_response_head(RequestContext& ctx, int status, std::span<const HeaderField> headers);
Verdict on_response_body(RequestContext& ctx, std::span<const std::byte> chunk, bool last);

// End of the exchange: logging phase, final record, transaction freed. Idempotent.
void finish_request(RequestContext& ctx) noexcept;

}  // namespace gerbang::policies::waf
