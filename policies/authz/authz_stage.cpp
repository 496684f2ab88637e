#include "policies/authz/authz_stage.hpp"

#include <algorithm>
#include <string>
#include <unordered_set>

#include "policies/request_context.hpp"

namespace gerbang::policies::authz {
namespace {

struct CompiledRule {
  std::unordered_set<std::string> consumers;
  std::unordered_set<std::string> groups;
  std::vector<std::string> methods;  // empty = any
  bool any_authenticated = false;
  bool anonymous = false;
};

class AuthzStage final : public Stage {
 public:
  explicit AuthzStage(const std::vector<AllowRule>& rules) {
    for (const auto& r : rules) {
      CompiledRule c;
      for (const auto& id : r.consumers) {
        if (id == any_authenticated) c.any_authenticated = true;
        else if (id == anonymous) c.anonymous = true;
        else c.consumers.insert(id);
      }
      c.groups.insert(r.groups.begin(), r.groups.end());
      c.methods = r.methods;
      rules_.push_back(std::move(c));
    }
  }

  std::string_view name() const noexcept override { return "authz"; }

  Verdict on_request_head(RequestContext& ctx) const override {
    const Principal& p = ctx.principal;
    const bool authenticated =
        p.method == AuthMethod::mtls || p.method == AuthMethod::api_key || p.method == AuthMethod::jwt;
    const bool is_anonymous = p.method == AuthMethod::anonymous;
    for (const auto& r : rules_) {
      if (!r.methods.empty() &&
          std::find(r.methods.begin(), r.methods.end(), ctx.request.method) == r.methods.end())
        continue;
      bool who = false;
      if (is_anonymous) {
        who = r.anonymous;
      } else if (authenticated) {
        who = r.any_authenticated || r.consumers.contains(p.consumer) ||
              std::any_of(p.groups.begin(), p.groups.end(), [&r](const std::string& g) { return r.groups.contains(g); });
      }
      if (who) return Verdict::next();
    }
    ctx.deny_detail = is_anonymous ? "authz: no allow rule admits anonymous callers"
                                   : "authz: no allow rule matches the principal and method";
    return Verdict::deny(Reason::authz_denied);
  }

 private:
  std::vector<CompiledRule> rules_;
};

}  // namespace

std::unique_ptr<Stage> make_authz_stage(const std::vector<AllowRule>& rules) {
  return std::make_unique<AuthzStage>(rules);
}

}  // namespace gerbang::policies::authz
