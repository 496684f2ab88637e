// Authorization matrix: consumers × groups × methods, reserved names, default deny.
#include "policies/authz/authz_stage.hpp"

#include <gtest/gtest.h>

#include "policies/request_context.hpp"

namespace gerbang::policies::authz {
namespace {

Principal who(AuthMethod m, std::string consumer, std::vector<std::string> groups = {}) {
  Principal p;
  p.method = m;
  p.consumer = std::move(consumer);
  p.groups = std::move(groups);
  return p;
}

Verdict decide(const Stage& s, const Principal& p, std::string_view method) {
  RequestContext ctx;
  ctx.principal = p;
  ctx.request.method = method;
  return s.on_request_head(ctx);
}

TEST(Authz, Matrix) {
  auto s = make_authz_stage({
      AllowRule{{"dinkes-app"}, {}, {}},
      AllowRule{{}, {"readers"}, {"GET", "HEAD"}},
      AllowRule{{"partner"}, {"writers"}, {"POST"}},
  });
  struct Case {
    Principal p;
    const char* method;
    bool allowed;
  };
  const Case cases[] = {
      {who(AuthMethod::mtls, "dinkes-app"), "DELETE", true},            // consumer rule, any method
      {who(AuthMethod::api_key, "x", {"readers"}), "GET", true},        // group + method
      {who(AuthMethod::api_key, "x", {"readers"}), "POST", false},      // group, wrong method
      {who(AuthMethod::jwt, "x", {"other", "writers"}), "POST", true},  // any group in the list
      {who(AuthMethod::jwt, "partner"), "POST", true},
      {who(AuthMethod::jwt, "partner"), "GET", false},
      {who(AuthMethod::mtls, "stranger"), "GET", false},
      {who(AuthMethod::anonymous, ""), "GET", false},                   // anonymous matches nothing by default
      {who(AuthMethod::none, "dinkes-app"), "GET", false},              // never authenticated
  };
  for (const auto& c : cases) {
    const auto v = decide(*s, c.p, c.method);
    EXPECT_EQ(v.is_next(), c.allowed) << c.p.consumer << " " << c.method;
    if (!c.allowed) {
      EXPECT_EQ(v.reason, Reason::authz_denied);
      EXPECT_EQ(info(v.reason).status, 403u);
      EXPECT_EQ(to_string(v.reason), "authz.denied");
    }
  }
}

TEST(Authz, NoRulesDenyEveryone) {
  auto s = make_authz_stage({});
  EXPECT_EQ(decide(*s, who(AuthMethod::mtls, "dinkes-app", {"admin"}), "GET").reason, Reason::authz_denied);
}

TEST(Authz, ReservedNames) {
  auto authenticated = make_authz_stage({AllowRule{{std::string(any_authenticated)}, {}, {"GET"}}});
  EXPECT_TRUE(decide(*authenticated, who(AuthMethod::jwt, "jwt:someone"), "GET").is_next());
  EXPECT_FALSE(decide(*authenticated, who(AuthMethod::jwt, "jwt:someone"), "PUT").is_next());
  EXPECT_FALSE(decide(*authenticated, who(AuthMethod::anonymous, ""), "GET").is_next());

  auto anon = make_authz_stage({AllowRule{{std::string(anonymous)}, {}, {"GET"}}});
  EXPECT_TRUE(decide(*anon, who(AuthMethod::anonymous, ""), "GET").is_next());
  EXPECT_FALSE(decide(*anon, who(AuthMethod::anonymous, ""), "POST").is_next());
  EXPECT_FALSE(decide(*anon, who(AuthMethod::mtls, "dinkes-app"), "GET").is_next());
}

}  // namespace
}  // namespace gerbang::policies::authz
