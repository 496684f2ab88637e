// plan_pruning on small rule texts shaped like the CRS: what goes, what stays, and every reason to prune
// nothing. (That a pruned CRS gives the same verdicts as the full one is WafPruning in waf_stage_test.cpp.)
#include "policies/waf/rule_pruning.hpp"

#include <gtest/gtest.h>

namespace gerbang::policies::waf {
namespace {

// Two CRS-like files: level-1 rule 1100, level-2 rule 1200 (phase 1) and 1210 (phase 2), then a file that
// starts with its "@lt 1" skip rules (which never match, and clear MATCHED_VAR*).
const char* kFileA = R"(# comment
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:1011,phase:1,pass,nolog,skipAfter:END-A"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:1012,phase:2,pass,nolog,skipAfter:END-A"
SecRule ARGS "@rx attack" \
    "id:1100,\
    phase:2,\
    block,\
    msg:'level 1, with a comma',\
    setvar:'tx.anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:1013,phase:1,pass,nolog,skipAfter:END-A"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:1014,phase:2,pass,nolog,skipAfter:END-A"
SecRule REQUEST_HEADERS:User-Agent "@eq 0" "id:1200,phase:1,block,chain"
    SecRule REQUEST_METHOD "@streq GET" "t:none"
SecRule ARGS "@rx other" "id:1210,phase:2,block"
SecMarker "END-A"
)";

const char* kFileB = R"(SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:2011,phase:1,pass,nolog,skipAfter:END-B"
SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 1" "id:2012,phase:2,pass,nolog,skipAfter:END-B"
SecRule ARGS "@rx b" "id:2100,phase:2,block"
SecMarker "END-B"
)";

PrunePlan plan(const std::string& extra, int paranoia = 1, std::set<std::int64_t> excluded = {},
               const std::string& setup = "") {
  std::vector<RuleSource> before, after;
  if (!setup.empty()) before.push_back({"setup.conf", setup});
  if (!extra.empty()) after.push_back({"extra.conf", extra});
  return plan_pruning(before, {{"A.conf", kFileA}, {"B.conf", kFileB}}, after, paranoia, excluded);
}

TEST(WafPrunePlan, RegionsAboveTheLevelAndTheirSkipRulesGo) {
  const PrunePlan p = plan("");
  EXPECT_EQ(p.not_pruned_because, "");
  EXPECT_EQ(p.remove, (std::set<std::int64_t>{1013, 1014, 1200, 1210}));
  EXPECT_EQ(p.skip_rules_removed, 2u);
  EXPECT_FALSE(p.internal_error_rule_needed);
}

TEST(WafPrunePlan, NothingAboveTheHighestLevel) {
  const PrunePlan p = plan("", 2);
  EXPECT_EQ(p.not_pruned_because, "");
  EXPECT_TRUE(p.remove.empty());
}

// A rule after the marker that reads MATCHED_VAR could see the skip rule's match: the skip rule stays (its
// region still goes, being never evaluated).
TEST(WafPrunePlan, SkipRuleStaysWhenWhatFollowsCouldSeeItsMatch) {
  std::vector<RuleSource> crs = {{"A.conf", kFileA},
                                 {"M.conf", R"(SecRule MATCHED_VAR "@rx x" "id:3000,phase:1,pass,nolog")"},
                                 {"B.conf", kFileB}};
  const PrunePlan p = plan_pruning({}, crs, {}, 1, {});
  EXPECT_EQ(p.not_pruned_because, "");
  EXPECT_EQ(p.remove, (std::set<std::int64_t>{1014, 1200, 1210}));  // 1013 (phase 1) stays
  // So does one followed by the end of the phase.
  const PrunePlan last = plan_pruning({}, {{"A.conf", kFileA}}, {}, 1, {});
  EXPECT_EQ(last.remove, (std::set<std::int64_t>{1200, 1210}));
}

TEST(WafPrunePlan, AnythingThatCouldChangeTheLevelOrRemoveASkipRulePrunesNothing) {
  struct Case {
    std::string extra, why;
  };
  for (const Case& c : {
           Case{R"(SecRule REQUEST_URI "@beginsWith /a" "id:5000,phase:1,pass,setvar:tx.executing_paranoia_level=2")",
                "sets tx.executing_paranoia_level"},
           Case{R"(SecAction "id:5001,phase:2,pass,setvar:'tx.paranoia_level=3'")", "sets tx.paranoia_level"},
           Case{R"x(SecRule ARGS:n "@rx (.*)" "id:5002,phase:1,pass,capture,setvar:'tx.%{tx.1}=4'")x",
                "dynamically named"},
           Case{R"(SecRule REQUEST_URI "@beginsWith /x" "id:5003,phase:1,pass,ctl:ruleRemoveById=1000-1999")",
                "removes a skip rule"},
           Case{R"(SecRule REQUEST_URI "@beginsWith /x" "id:5004,phase:1,pass,ctl:ruleRemoveTargetById=1013;TX:x")",
                "changes a skip rule's targets"},
           Case{"SecRuleRemoveById 1014", "names a skip rule"},
           Case{"SecRuleUpdateActionById 1013 \"pass\"", "names a skip rule"},
           Case{R"(SecRule ARGS "@rx a" "id:5005,phase:2,pass,skip:1")", "skip:N"},
           Case{R"(SecRule ARGS "@rx a" "id:5006,phase:2,pass,exec:/tmp/x.lua")", "Lua"},
           Case{R"(SecRule ARGS "@rx a" "id:5007,phase:1,pass,skipAfter:INNER"
SecMarker INNER)", ""},  // a skip to a marker of its own, after the CRS: harmless
       }) {
    const PrunePlan p = plan(c.extra);
    if (c.why.empty()) {
      EXPECT_EQ(p.not_pruned_because, "") << c.extra;
      EXPECT_FALSE(p.remove.empty()) << c.extra;
      continue;
    }
    EXPECT_TRUE(p.remove.empty()) << c.extra;
    EXPECT_NE(p.not_pruned_because.find(c.why), std::string::npos) << c.extra << " → " << p.not_pruned_because;
  }
  // The route's own exclusions.
  EXPECT_NE(plan("", 1, {1013}).not_pruned_because.find("1013"), std::string::npos);
  EXPECT_EQ(plan("", 1, {1100}).not_pruned_because, "");
  // crs-setup.conf's phase-1 SecAction for the level is overridden by the route's 900800: fine.
  EXPECT_EQ(plan("", 1, {}, R"(SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1")")
                .not_pruned_because,
            "");
}

// A ctl that removes a skip rule is harmless inside a region that is itself never evaluated (the CRS's
// application exclusion packages, skipped while nothing sets tx.crs_exclusions_<app>); live once something does.
TEST(WafPrunePlan, ExclusionPackagesAreDeadUntilEnabled) {
  const std::string package = R"(SecRule &TX:crs_exclusions_app|TX:crs_exclusions_app "@eq 0" \
    "id:9001000,phase:1,pass,t:none,nolog,ver:'OWASP_CRS/3.3.4',skipAfter:END-APP"
SecRule &TX:crs_exclusions_app|TX:crs_exclusions_app "@eq 0" \
    "id:9001001,phase:2,pass,t:none,nolog,ver:'OWASP_CRS/3.3.4',skipAfter:END-APP"
SecRule REQUEST_FILENAME "@contains /webdav" "id:9001100,phase:2,pass,t:none,nolog,ctl:ruleRemoveById=1000-1999"
SecMarker "END-APP"
)";
  const PrunePlan off = plan_pruning({}, {{"P.conf", package}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_EQ(off.not_pruned_because, "");
  EXPECT_EQ(off.remove.count(9001100), 1u);
  EXPECT_EQ(off.remove.count(9001000), 1u);  // followed by 1011, which never matches
  EXPECT_EQ(off.remove.count(1013), 1u);
  const RuleSource enable{"setup.conf", R"(SecAction "id:900130,phase:1,pass,setvar:tx.crs_exclusions_app=1")"};
  const PrunePlan on =
      plan_pruning({enable}, {{"P.conf", package}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_TRUE(on.remove.empty());
  EXPECT_NE(on.not_pruned_because.find("9001100"), std::string::npos) << on.not_pruned_because;
}

TEST(WafPrunePlan, InternalErrorRuleOnlyWhenSomethingCanSetMscVariables) {
  EXPECT_FALSE(plan("").internal_error_rule_needed);
  EXPECT_TRUE(plan(R"(SecRule ARGS "@rx a" "id:6000,phase:1,pass,setvar:tx.msc_custom=1")").internal_error_rule_needed);
  EXPECT_TRUE(plan(R"x(SecRule ARGS "@rx (a)" "id:6001,phase:1,pass,capture,setvar:tx.%{tx.1}=1")x")
                  .internal_error_rule_needed);
  EXPECT_FALSE(plan(R"x(SecRule ARGS "@rx (a)" "id:6002,phase:1,pass,capture,setvar:tx.header_%{tx.1}=1")x")
                   .internal_error_rule_needed);
}

}  // namespace
}  // namespace gerbang::policies::waf

namespace gerbang::policies::waf {
namespace {

// A CRS default ("&TX:N" "@eq 0" → setvar:tx.N=V, nothing else setting N) moves to SecAction 900803 and its
// rule goes — unless something could tell the difference.
TEST(WafPrunePlan, DefaultsSetOnEveryRequestMoveAheadOfTheCrs) {
  const std::string init = R"(SecRule &TX:critical_anomaly_score "@eq 0" \
    "id:901140,phase:1,pass,nolog,ver:'OWASP_CRS/3.3.4',setvar:'tx.critical_anomaly_score=5'"
SecRule &TX:inbound_anomaly_score_threshold "@eq 0" \
    "id:901100,phase:1,pass,nolog,setvar:'tx.inbound_anomaly_score_threshold=5'"
SecRule &TX:counter "@eq 0" "id:901190,phase:1,pass,nolog,setvar:'tx.counter=+1'"
)";
  const RuleSource route{"route",
                         R"(SecAction "id:900801,phase:1,nolog,pass,setvar:tx.inbound_anomaly_score_threshold=9")"};
  const PrunePlan p = plan_pruning({route}, {{"I.conf", init}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_EQ(p.not_pruned_because, "");
  // 901100's variable is the route's (it never matches); 901190 adds, it does not set.
  EXPECT_EQ(p.defaults, (std::vector<std::string>{"tx.critical_anomaly_score=5"}));
  EXPECT_EQ(p.remove.count(901140), 1u);
  EXPECT_EQ(p.remove.count(901100), 0u);
  EXPECT_EQ(p.remove.count(901190), 0u);

  // A CRS rule before it that reads the variable would see it set earlier.
  const std::string reader = R"(SecRule TX:critical_anomaly_score "@eq 5" "id:901050,phase:1,pass,nolog")";
  const PrunePlan r =
      plan_pruning({route}, {{"R.conf", reader}, {"I.conf", init}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_TRUE(r.defaults.empty());
  EXPECT_EQ(r.remove.count(901140), 0u);

  // A rule after it that reads MATCHED_VARS (before anything clears them) could see its match.
  const std::string after_reader = R"(SecRule MATCHED_VARS "@rx 0" "id:901060,phase:1,pass,nolog")";
  const PrunePlan m = plan_pruning(
      {route}, {{"I.conf", init}, {"M.conf", after_reader}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_TRUE(m.defaults.empty());
  // A rule that reads only its own match (%{MATCHED_VAR} in its actions) is fine.
  const std::string own = R"(SecRule REQUEST_HEADERS:User-Agent "@rx ^.*$" \
    "id:901318,phase:1,pass,t:none,t:sha1,t:hexEncode,nolog,setvar:'tx.ua_hash=%{MATCHED_VAR}'")";
  const PrunePlan o =
      plan_pruning({route}, {{"I.conf", init}, {"O.conf", own}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {});
  EXPECT_EQ(o.defaults, (std::vector<std::string>{"tx.critical_anomaly_score=5"}));

  // Set elsewhere too (crs-setup.conf): not a default. Excluded by the route, or its 900803: not either.
  const RuleSource setup{"setup", R"(SecAction "id:900100,phase:1,nolog,pass,setvar:tx.critical_anomaly_score=6")"};
  EXPECT_TRUE(plan_pruning({setup, route}, {{"I.conf", init}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {})
                  .defaults.empty());
  EXPECT_TRUE(plan_pruning({route}, {{"I.conf", init}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {901140})
                  .defaults.empty());
  EXPECT_TRUE(plan_pruning({route}, {{"I.conf", init}, {"A.conf", kFileA}, {"B.conf", kFileB}}, {}, 1, {900803})
                  .defaults.empty());
}

}  // namespace
}  // namespace gerbang::policies::waf
