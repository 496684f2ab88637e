// Validated configuration of the WAF stage (issue #5): ModSecurity v3 with the OWASP Core Rule Set, per route.
//
// CONTRACT as policy_config.hpp: every field carries its default and its constraint; the loader validates
// ranges and shapes (see docs/config.md, `waf:`), and Engine::rules_for re-checks what could corrupt the rule
// text it assembles (exclusion targets) so a bad value can never inject directives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gerbang::policies {

struct WafRouteConfig {
  enum class Mode : std::uint8_t { off, detect, block };
  Mode mode = Mode::off;              // off: no stage; detect: record matches, never deny; block: deny on intervention
  int paranoia = 1;                   // CRS paranoia level, 1..4 (tx.paranoia_level = tx.executing_paranoia_level)
  int inbound_threshold = 5;          // tx.inbound_anomaly_score_threshold, 1..10000
  int outbound_threshold = 4;         // tx.outbound_anomaly_score_threshold, 1..10000
  std::vector<int> exclude_rules;     // SecRuleRemoveById, 1..9999999 each
  struct TargetExclusion {
    int rule = 0;                     // rule id
    std::string target;               // "ARGS:password", "REQUEST_HEADERS:User-Agent", "REQUEST_COOKIES:/^sess_/"
  };
  std::vector<TargetExclusion> exclude_targets;  // SecRuleUpdateTargetById <rule> "!<target>"
  // Request body bytes fed to the engine (SecRequestBodyLimit). The gateway buffers the body up to this size
  // before it opens the upstream connection. 1 KiB .. 64 MiB.
  std::uint64_t body_inspection_limit = 128 * 1024;
  // Past the limit: reject → 413 waf.body_over_limit (block mode; a Content-Length over the limit is refused
  // at the head); pass → the first `body_inspection_limit` bytes are inspected, the rest is forwarded
  // uninspected and the audit record says so (WafRecord::body_truncated). Detect mode always passes (like
  // ModSecurity, which turns Reject into ProcessPartial under DetectionOnly).
  enum class OverLimit : std::uint8_t { reject, pass };
  OverLimit over_limit = OverLimit::reject;
  // Space-separated methods CRS accepts (tx.allowed_methods, rule 911100). CRS's default is "GET HEAD POST
  // OPTIONS", which blocks REST APIs; the route's own method list still applies before the WAF.
  std::string allowed_methods = "GET HEAD POST OPTIONS PUT PATCH DELETE";
  bool inspect_response = false;      // load RESPONSE-*.conf and run the response phases (data-leak rules)
  std::uint64_t response_inspection_limit = 64 * 1024;  // SecResponseBodyLimit (ProcessPartial), 1 KiB .. 16 MiB
};

struct WafGlobalConfig {
  std::string crs_dir = "/usr/share/modsecurity-crs";        // contains rules/REQUEST-*.conf, RESPONSE-*.conf
  std::string crs_setup = "/etc/modsecurity/crs/crs-setup.conf";  // "" = none
  std::vector<std::string> extra_rule_files;                  // loaded after the CRS, for every WAF route
  // Leave out the CRS rules a route can never evaluate, and the paranoia skip rules whose match nothing can
  // see (waf/rule_pruning.hpp); the verdicts are the same. Not a configuration key: tests compare both.
  bool prune_unreachable_rules = true;
};

}  // namespace gerbang::policies
