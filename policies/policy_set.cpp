// PolicySet: the stages of one configuration generation, per route in the order
// ip filter → authn → authz → ratelimit (stages with nothing to do are left out), and the listener filters.
#include "policies/policy_set.hpp"
#include "policies/waf/modsec_engine.hpp"
#include "policies/waf/waf_stage.hpp"

#include <algorithm>

#include "policies/authn/authn_stage.hpp"
#include "policies/authz/authz_stage.hpp"
#include "policies/ipfilter/ip_filter.hpp"
#include "policies/ratelimit/ratelimit_stage.hpp"

namespace gerbang::policies {
namespace {

class WorkerStateImpl final : public WorkerState, public ratelimit::HasWorkerBuckets {
 public:
  explicit WorkerStateImpl(ratelimit::WorkerBucketsPtr buckets) : buckets_(std::move(buckets)) {}
  ratelimit::WorkerBuckets& buckets() override { return *buckets_; }

 private:
  ratelimit::WorkerBucketsPtr buckets_;
};

class PolicySetImpl final : public PolicySet {
 public:
  std::span<const Stage* const> route_stages(std::size_t route) const override {
    if (route >= route_views_.size()) return {};
    return route_views_[route];
  }

  Verdict check_listener(std::size_t listener, const IpAddress& client) const override {
    if (listener >= listener_filters_.size() || !listener_filters_[listener]) return Verdict::next();
    if (listener_filters_[listener]->allows(client)) return Verdict::next();
    return Verdict::deny(Reason::ipfilter_denied);
  }

  std::unique_ptr<WorkerState> make_worker_state(std::unique_ptr<ratelimit::CounterBackend> backend) const override {
    return std::make_unique<WorkerStateImpl>(ratelimit::make_worker_buckets(ratelimit_, std::move(backend)));
  }

  std::span<const std::string> notes() const override { return notes_; }

  RateLimitBackendConfig ratelimit_;
  std::shared_ptr<waf::Engine> waf_engine_;  // shared read-only by the WAF stages (rules parsed once)
  std::vector<std::unique_ptr<Stage>> owned_;
  std::vector<std::vector<const Stage*>> route_views_;
  std::vector<std::unique_ptr<ipfilter::CompiledFilter>> listener_filters_;  // null = no filter
  std::vector<std::string> notes_;
};

}  // namespace

std::unique_ptr<PolicySet> PolicySet::create(const Inputs& in, std::vector<std::string>& errors) {
  static const std::vector<ConsumerConfig> kNoConsumers;
  static const AuthConfig kNoAuth;
  static const IdentityConfig kNoIdentity;
  static const RateLimitBackendConfig kLocal;
  const auto& consumers = in.consumers != nullptr ? *in.consumers : kNoConsumers;
  const auto& auth = in.auth != nullptr ? *in.auth : kNoAuth;
  const auto& identity = in.identity != nullptr ? *in.identity : kNoIdentity;

  auto set = std::make_unique<PolicySetImpl>();
  set->ratelimit_ = in.ratelimit != nullptr ? *in.ratelimit : kLocal;
  const std::size_t before = errors.size();

  // The consumer index (JWKS files, signing key) is only needed when some route authenticates.
  const bool any_auth = std::any_of(in.routes.begin(), in.routes.end(),
                                    [](const RouteInput& r) { return r.policy != nullptr && r.policy->has_auth; });
  std::shared_ptr<const authn::AuthnIndex> index;
  if (any_auth || !consumers.empty() || !auth.jwt_issuers.empty() || !identity.signing_key_file.empty()) {
    index = authn::build_authn_index(consumers, auth, identity, errors);
  }

  // The WAF engine and CRS are loaded once, only when some route uses them.
  const bool any_waf = std::any_of(in.routes.begin(), in.routes.end(), [](const RouteInput& r) {
    return r.waf != nullptr && r.waf->mode != WafRouteConfig::Mode::off;
  });
  if (any_waf) {
    static const WafGlobalConfig kDefaultWaf;
    std::string error;
    set->waf_engine_ = waf::Engine::create(in.waf != nullptr ? *in.waf : kDefaultWaf, error);
    if (!set->waf_engine_) {
      errors.push_back("waf: " + error);
    } else {
      set->notes_.push_back("WAF engine: " + set->waf_engine_->lowercase_note());
    }
  }

  for (std::size_t i = 0; i < in.routes.size(); ++i) {
    const auto& r = in.routes[i];
    std::vector<const Stage*> stages;
    auto keep = [&](std::unique_ptr<Stage> s) {
      if (!s) return;
      stages.push_back(s.get());
      set->owned_.push_back(std::move(s));
    };
    if (r.policy != nullptr) {
      const auto& p = *r.policy;
      keep(ipfilter::make_ipfilter_stage(p.ip));
      if (p.has_auth) {
        if (index) keep(authn::make_authn_stage(index, p.auth));
        keep(authz::make_authz_stage(p.allow));
      } else if (!p.allow.empty()) {
        errors.push_back("routes[" + std::to_string(i) + "] (" + r.name + "): allow needs auth");
      }
      keep(ratelimit::make_ratelimit_stage(r.name, i, p.rate_limits, set->ratelimit_));
    }
    // The WAF is the last stage before proxying (DESIGN.md §2).
    if (set->waf_engine_ && r.waf != nullptr && r.waf->mode != WafRouteConfig::Mode::off) {
      std::string error;
      auto stage = waf::make_waf_stage(*set->waf_engine_, *r.waf, error);
      if (!stage && !error.empty()) {
        errors.push_back("routes[" + std::to_string(i) + "] (" + r.name + "): " + error);
      }
      if (stage) {  // the stage's compiled set, from the engine's cache
        if (const auto rules = set->waf_engine_->rules_for(*r.waf, error)) {
          const std::size_t out = rules->pruned_rule_count();
          set->notes_.push_back(
              "route " + r.name + ": WAF rule set: " +
              (out > 0 ? std::to_string(out) + " of " + std::to_string(rules->rule_count()) +
                             " rules left out (never evaluated at paranoia " + std::to_string(r.waf->paranoia) +
                             ", or set up ahead of the CRS)"
                       : "compiled in full (" + rules->not_pruned_because() + ")"));
        }
      }
      keep(std::move(stage));
    }
    set->route_views_.push_back(std::move(stages));
  }

  for (const auto* l : in.listeners) {
    if (l == nullptr || l->empty()) set->listener_filters_.push_back(nullptr);
    else set->listener_filters_.push_back(std::make_unique<ipfilter::CompiledFilter>(*l));
  }

  if (errors.size() != before) return nullptr;
  return set;
}

}  // namespace gerbang::policies
