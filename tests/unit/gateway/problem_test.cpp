#include "gateway/problem.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "policies/reason.hpp"

namespace gerbang::gateway {
namespace {

using policies::Reason;

struct Response {
  std::string status_line;
  std::string head;  // field lines, each ending in CRLF, without the status line and the blank line
  std::string body;
};

Response split(const std::string& raw) {
  Response r;
  auto end = raw.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos) << raw;
  if (end == std::string::npos) {
    return r;
  }
  auto eol = raw.find("\r\n");
  r.status_line = raw.substr(0, eol);
  r.head = raw.substr(eol + 2, end + 2 - (eol + 2));
  r.body = raw.substr(end + 4);
  return r;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

// The value of "Name: value\r\n" in a head (exact-case name, first occurrence), or "<absent>".
std::string field(const std::string& head, const std::string& name) {
  const std::string key = name + ": ";
  std::size_t p = head.rfind(key, 0) == 0 ? 0 : head.find("\r\n" + key);
  if (p == std::string::npos) {
    return "<absent>";
  }
  p = head.find(key, p) + key.size();
  return head.substr(p, head.find("\r\n", p) - p);
}

std::string render(Reason reason, std::string_view rid, const LocalReplyOptions& o = {}) {
  std::string out;
  render_problem(out, reason, rid, o);
  return out;
}

TEST(RenderProblem, NotFoundHasStatusTypeLengthAndRequestId) {
  const Response r = split(render(Reason::route_not_found, "rid-123"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(field(r.head, "Content-Type"), "application/problem+json");
  EXPECT_EQ(field(r.head, "Content-Length"), std::to_string(r.body.size()));
  EXPECT_EQ(field(r.head, "X-Request-Id"), "rid-123");
  EXPECT_EQ(count(r.head, "Content-Length:"), 1u);
  EXPECT_EQ(field(r.head, "Connection"), "<absent>");
  EXPECT_EQ(field(r.head, "Strict-Transport-Security"), "<absent>");
  EXPECT_NE(r.body.find(R"("type":"urn:gerbang:problem:route.not_found")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("status":404)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("title":"Not Found")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("request_id":"rid-123")"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.front(), '{');
}

TEST(RenderProblem, EveryReasonRendersConsistently) {
  for (std::size_t i = 1; i < policies::kReasonCount; ++i) {
    const auto reason = static_cast<Reason>(i);
    const auto& ri = policies::info(reason);
    const Response r = split(render(reason, "r1"));
    EXPECT_EQ(r.status_line, "HTTP/1.1 " + std::to_string(ri.status) + " " + std::string(ri.title)) << ri.name;
    EXPECT_EQ(field(r.head, "Content-Length"), std::to_string(r.body.size())) << ri.name;
    EXPECT_NE(r.body.find("\"type\":\"urn:gerbang:problem:" + std::string(ri.name) + "\""), std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("\"status\":" + std::to_string(ri.status) + ","), std::string::npos) << r.body;
  }
}

TEST(RenderProblem, HeadOnlyHasNoBodyButTheSameLength) {
  const std::string full = render(Reason::limits_body_too_large, "rid-9");
  LocalReplyOptions o;
  o.head_only = true;
  const std::string head = render(Reason::limits_body_too_large, "rid-9", o);
  const Response rf = split(full);
  const Response rh = split(head);
  EXPECT_TRUE(rh.body.empty());
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(rh.status_line, "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(field(rh.head, "Content-Length"), std::to_string(rf.body.size()));
  EXPECT_EQ(head, full.substr(0, full.size() - rf.body.size()));
}

TEST(RenderProblem, HstsExtraHeadersAndClose) {
  LocalReplyOptions o;
  o.hsts = "max-age=31536000";
  o.extra_headers = "Allow: GET, POST\r\nRetry-After: 5\r\n";
  o.close = true;
  const Response r = split(render(Reason::route_method_not_allowed, "rid-1", o));
  EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(field(r.head, "Strict-Transport-Security"), "max-age=31536000");
  EXPECT_EQ(field(r.head, "Allow"), "GET, POST");
  EXPECT_EQ(field(r.head, "Retry-After"), "5");
  EXPECT_EQ(field(r.head, "Connection"), "close");
  EXPECT_EQ(count(r.head, "Connection:"), 1u);
  EXPECT_EQ(field(r.head, "Content-Length"), std::to_string(r.body.size()));
}

TEST(RenderProblem, AppendsToExistingOutput) {
  std::string out = "earlier bytes";
  render_problem(out, Reason::upstream_timeout, "x", {});
  EXPECT_EQ(out.rfind("earlier bytesHTTP/1.1 504 Gateway Timeout\r\n", 0), 0u);
}

TEST(RenderProblem, RequestIdIsEscapedInTheBody) {
  const Response r = split(render(Reason::gateway_internal_error, "a\"b\\c"));
  EXPECT_NE(r.body.find(R"("request_id":"a\"b\\c")"), std::string::npos) << r.body;
  EXPECT_EQ(field(r.head, "Content-Length"), std::to_string(r.body.size()));
}

TEST(AppendJsonEscaped, EscapesQuotesBackslashesAndControls) {
  auto esc = [](std::string_view s) {
    std::string out = "<";
    append_json_escaped(out, s);
    return out;
  };
  EXPECT_EQ(esc("plain text 123"), "<plain text 123");
  EXPECT_EQ(esc("a\"b"), "<a\\\"b");
  EXPECT_EQ(esc("a\\b"), "<a\\\\b");
  EXPECT_EQ(esc("\n\r\t"), "<\\n\\r\\t");
  EXPECT_EQ(esc(std::string_view("\0", 1)), "<\\u0000");
  EXPECT_EQ(esc("\x01\x1f"), "<\\u0001\\u001f");
  EXPECT_EQ(esc("\x7f"), "<\\u007f");
  EXPECT_EQ(esc("\b\f"), "<\\u0008\\u000c");
  EXPECT_EQ(esc("/"), "</") << "solidus needs no escape";
  EXPECT_EQ(esc("caf\xc3\xa9"), "<caf\xc3\xa9") << "UTF-8 passes through";
  EXPECT_EQ(esc(""), "<");
}

// ---- policies::Reason --------------------------------------------------------------------------------------

TEST(Reason, EveryValueHasAUniqueDottedNameAndAValidStatus) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < policies::kReasonCount; ++i) {
    const auto reason = static_cast<Reason>(i);
    const auto& ri = policies::info(reason);
    EXPECT_FALSE(ri.name.empty()) << i;
    EXPECT_FALSE(ri.title.empty()) << ri.name;
    EXPECT_TRUE(names.insert(ri.name).second) << "duplicate name " << ri.name;
    EXPECT_GE(ri.status, 100u) << ri.name;
    EXPECT_LE(ri.status, 599u) << ri.name;
    EXPECT_EQ(policies::to_string(reason), ri.name);
    for (char c : ri.name) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')
          << "name " << ri.name << " is not a lower-case dotted identifier";
    }
    if (reason == Reason::none) {
      EXPECT_EQ(ri.name, "none");  // the one undotted name: "forwarded normally", not a problem type
      continue;
    }
    const auto dot = ri.name.find('.');
    EXPECT_NE(dot, std::string_view::npos) << ri.name;
    EXPECT_GT(dot, 0u) << ri.name;
    EXPECT_LT(dot + 1, ri.name.size()) << ri.name;
    if (reason == Reason::waf_redirect) {
      EXPECT_EQ(ri.status, 302u) << "a WAF redirect intervention is the one local reply that is not an error";
      continue;
    }
    EXPECT_GE(ri.status, 400u) << ri.name << ": a local reply is an error";
  }
  EXPECT_EQ(names.size(), policies::kReasonCount);
}

TEST(Reason, NamesFollowTheEnumeratorGroups) {
  EXPECT_EQ(policies::to_string(Reason::http_obs_fold), "http.obs_fold");
  EXPECT_EQ(policies::to_string(Reason::route_not_found), "route.not_found");
  EXPECT_EQ(policies::to_string(Reason::limits_body_too_large), "limits.body_too_large");
  EXPECT_EQ(policies::to_string(Reason::upstream_overloaded), "upstream.overloaded");
  EXPECT_EQ(policies::to_string(Reason::gateway_internal_error), "gateway.internal_error");
  EXPECT_EQ(policies::info(Reason::http_bad_version).status, 505u);
  EXPECT_EQ(policies::info(Reason::upstream_timeout).status, 504u);
  EXPECT_EQ(policies::info(Reason::gateway_shutting_down).status, 503u);
}

TEST(Reason, OutOfRangeValueMapsToInternalError) {
  EXPECT_EQ(policies::info(Reason::count_).name, "gateway.internal_error");
  EXPECT_EQ(policies::info(static_cast<Reason>(250)).status, 500u);
}

}  // namespace
}  // namespace gerbang::gateway
