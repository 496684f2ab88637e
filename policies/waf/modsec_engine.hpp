// The ModSecurity v3 engine and its compiled rule sets (DESIGN.md §2 WAF, STYLE.md §1.4 and §2 item 15).
//
// Lifetimes: one Engine per configuration generation owns the `modsecurity::ModSecurity` object; it compiles
// one RuleSet per DISTINCT route configuration (routes with equal WafRouteConfig share one), once, at build.
// A RuleSet keeps its Engine alive, and every waf::Transaction keeps its RuleSet alive, so a reload can drop
// the old generation while requests still run on it.
//
// Rule text (assembled in memory, see Engine::rule_text): our base directives (engine mode, body access and
// limits, body processors by content type, the recommended body-error rules 200002..200005, audit and debug
// logging off) → SecAction 900000/900110/900200 (paranoia level, anomaly thresholds, allowed methods) →
// crs-setup.conf → <crs_dir>/rules/REQUEST-*.conf (and RESPONSE-*.conf when inspect_response) in name order →
// extra rule files → exclusions (SecRuleRemoveById, SecRuleUpdateTargetById <id> "!<target>"). After parsing,
// the rules the route can never evaluate are taken out of the set (rule_pruning.hpp).
//
// THREAD SAFETY: create() and rules_for() run at configuration build (serialised by a mutex anyway). After
// that a RuleSet is only read — libmodsecurity evaluates one shared RulesSet from many threads, each with its
// own Transaction (ModSecurity's examples/multithread). No exceptions escape.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "policies/waf/waf_config.hpp"

namespace modsecurity {
class ModSecurity;
class RulesSet;
}  // namespace modsecurity

namespace gerbang::policies::waf {

class Engine;

// One compiled rule set. Read-only after build.
class RuleSet {
 public:
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  const WafRouteConfig& config() const noexcept { return config_; }
  // libmodsecurity takes non-const pointers; the rule set is never modified after build.
  modsecurity::RulesSet* native() const noexcept { return rules_.get(); }
  modsecurity::ModSecurity* modsec() const noexcept;
  int rule_count() const noexcept { return rule_count_; }
  // Rules left out of the compiled set (rule_pruning.hpp), and why none were when that is 0.
  std::size_t pruned_rule_count() const noexcept { return pruned_; }
  const std::string& not_pruned_because() const noexcept { return not_pruned_because_; }

 private:
  friend class Engine;
  RuleSet() = default;
  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<modsecurity::RulesSet> rules_;
  WafRouteConfig config_;
  int rule_count_ = 0;
  std::size_t pruned_ = 0;
  std::string not_pruned_because_;
};

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  // Null with `error` set if the CRS directory or setup file is unusable.
  static std::shared_ptr<Engine> create(const WafGlobalConfig& global, std::string& error);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The compiled rules for a route configuration (mode must not be off), parsed on first use and shared by
  // every later call with an equal configuration. Null with `error` = the engine's parser message (file, line,
  // directive) on failure.
  std::shared_ptr<const RuleSet> rules_for(const WafRouteConfig& route, std::string& error);

  // The rule text for a route (what rules_for parses). Empty with `error` on invalid values.
  // `internal_error_rule`: include rule 200005 (rules_for leaves it out when no rule can set TX:MSC_*);
  // `defaults`: "tx.N=V" for SecAction 900803, ahead of the CRS (PrunePlan::defaults).
  std::string rule_text(const WafRouteConfig& route, bool internal_error_rule, const std::vector<std::string>& defaults,
                        std::string& error) const;

  modsecurity::ModSecurity* modsec() const noexcept { return modsec_.get(); }
  const WafGlobalConfig& global() const noexcept { return global_; }
  // Number of distinct compiled rule sets still in use.
  std::size_t rule_set_count() const;
  // Which t:lowercase runs, and why (waf/lowercase.hpp), for the log.
  const std::string& lowercase_note() const noexcept { return lowercase_note_; }

 private:
  struct ModSecDeleter {
    void operator()(modsecurity::ModSecurity* m) const noexcept;
  };
  Engine() = default;
  WafGlobalConfig global_;
  std::vector<std::string> request_files_, response_files_;  // CRS files, sorted
  std::unique_ptr<modsecurity::ModSecurity, ModSecDeleter> modsec_;
  std::string lowercase_note_;
  mutable std::mutex mutex_;
  // rule text → rule set. Weak: a RuleSet owns its Engine (transactions need the ModSecurity object), so a
  // strong reference back would be a cycle that keeps both alive forever. Sets in use are held by the
  // config generations that route to them; an unused one is compiled again when next asked for.
  std::map<std::string, std::weak_ptr<const RuleSet>> cache_;
};

}  // namespace gerbang::policies::waf
