// Which CRS rules a route's compiled rule set can leave out without changing a single verdict (issue #5:
// "not doing needless work").
//
// The CRS ships every paranoia level's rules in one file and, per phase, skips the higher levels at run time:
//   SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:911013,phase:1,pass,nolog,skipAfter:END-REQUEST-911-..."
// At paranoia 1 that rule matches on every request. A match is the engine's dearest path (it formats a match
// message, copies the rule message and updates MATCHED_VAR*), ~14k instructions; about 34 such matches per
// request were ~15% of the WAF's work on a small GET. The tx.executing_paranoia_level of a route is fixed at
// build (SecAction 900800), so which of these rules match is known before any request arrives.
//
// The plan (all of it proved from the rule text, or nothing is pruned):
//   - a rule inside the region of an always-matching skip rule (between it and its SecMarker, same phase) is
//     never evaluated in that phase: it goes;
//   - the skip rule itself goes when its only other effect, MATCHED_VAR* left set, cannot be seen: the rules
//     evaluated after its marker, up to a skip rule that never matches (which clears MATCHED_VAR*), neither
//     read MATCHED_* nor change the flow (no disruptive action, ctl, skip or chain-breaking flow);
//   - nothing is pruned when anything could change the level at run time or remove a skip rule: a setvar of
//     tx.executing_paranoia_level other than the route's own and CRS's "if unset" default, a dynamically named
//     tx setvar that could be it, a live ctl:ruleRemoveById / ctl:ruleRemoveTargetById or a
//     SecRuleRemoveById / SecRuleUpdate*ById (the route's exclusions included) naming a skip rule, skip:N
//     (counts rules), exec / SecRuleScript, a skip into a region, or a region rule without id or phase.
// A ctl inside a region that is itself never evaluated (the CRS application exclusion packages, skipped while
// their tx.crs_exclusions_<app> is set by no rule) is not live.
//
// CRS defaults (REQUEST-901's `SecRule &TX:N "@eq 0" "...,setvar:'tx.N=V'"` with nothing else setting N)
// match on every request too: the route's SecAction 900803 sets them ahead of the CRS instead, and the rule
// goes, when no CRS rule before it reads N (or the whole TX collection) and the same MATCHED_VAR* walk holds.
//
// The recommended rule 200005 (TX:/^MSC_/ "!@streq 0") is needed only when some rule can set a TX variable
// named MSC_*: libmodsecurity 3.0.9 itself sets none, and the rule compiles its key regex on every request.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace gerbang::policies::waf {

struct RuleSource {
  std::string path;  // for reasons only
  std::string text;
};

struct PrunePlan {
  std::set<std::int64_t> remove;          // rule ids (chain parents) to leave out of every phase
  std::size_t skip_rules_removed = 0;     // of which: always-matching paranoia skip rules
  bool internal_error_rule_needed = true; // 200005
  std::vector<std::string> defaults;      // "tx.N=V": for SecAction 900803, ahead of the CRS
  std::string not_pruned_because;         // non-empty: `remove` is empty, and why
};

// before: what is loaded ahead of the CRS (crs-setup.conf); crs: the CRS files in load order; after: extra
// rule files. `excluded` are the route's SecRuleRemoveById / SecRuleUpdateTargetById rule ids.
PrunePlan plan_pruning(const std::vector<RuleSource>& before, const std::vector<RuleSource>& crs,
                       const std::vector<RuleSource>& after, int paranoia, const std::set<std::int64_t>& excluded);

}  // namespace gerbang::policies::waf
