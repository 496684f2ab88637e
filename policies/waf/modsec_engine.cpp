#include "policies/waf/modsec_engine.hpp"

#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_with_actions.h>
#include <modsecurity/rules_set.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <system_error>

#include "policies/waf/lowercase.hpp"
#include "policies/waf/rule_pruning.hpp"

namespace gerbang::policies::waf {
namespace {

namespace fs = std::filesystem;

// The engine prints every rule match to stderr when no server-log callback is set. Matches are read from the
// transaction itself (waf::Transaction), so this one does nothing; RuleMessageLogProperty hands it the
// message object, which costs no formatting.
void ignore_server_log(void*, const void*) {}

bool readable_file(const std::string& path, std::string& error, std::string_view what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    error = std::string(what) + " '" + path + "' is not a readable file";
    return false;
  }
  std::ifstream in(path);
  if (!in) {
    error = std::string(what) + " '" + path + "' cannot be opened";
    return false;
  }
  return true;
}

// Paths go into `Include "<path>"`: no quote, backslash or control character may end the string early.
bool safe_path(const std::string& path, std::string& error) {
  for (const char c : path) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      error = "WAF rule file path '" + path + "' contains a quote, backslash or control character";
      return false;
    }
  }
  return true;
}

// "COLLECTION" or "COLLECTION:key" (key may be a /regex/). No quotes, commas, whitespace or control
// characters, and no trailing backslash: the value goes inside "!...".
bool valid_target(const std::string& t) {
  if (t.empty() || t.size() > 256) return false;
  const auto colon = t.find(':');
  const std::string_view name = std::string_view(t).substr(0, colon);
  if (name.empty()) return false;
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!ok) return false;
  }
  if (colon != std::string::npos && colon + 1 == t.size()) return false;
  for (const char c : t) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '\'' || c == ',') return false;
  }
  return t.back() != '\\';
}

bool valid_methods(const std::string& m) {
  if (m.empty()) return false;
  for (const char c : m) {
    if (!((c >= 'A' && c <= 'Z') || c == ' ' || c == '-' || c == '_')) return false;
  }
  return true;
}

void append_line(std::string& out, std::string_view line) {
  out += line;
  out += '\n';
}

// The route's CRS settings (after crs-setup.conf so they win; ids outside its template).
std::string route_settings(const WafRouteConfig& r) {
  std::string t;
  const std::string pl = std::to_string(r.paranoia);
  append_line(t, "SecAction \"id:900800,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=" + pl +
                     ",setvar:tx.executing_paranoia_level=" + pl + "\"");
  append_line(t, "SecAction \"id:900801,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=" +
                     std::to_string(r.inbound_threshold) +
                     ",setvar:tx.outbound_anomaly_score_threshold=" + std::to_string(r.outbound_threshold) + "\"");
  append_line(t, "SecAction \"id:900802,phase:1,nolog,pass,t:none,setvar:'tx.allowed_methods=" +
                     r.allowed_methods + "'\"");
  return t;
}

bool read_sources(const std::vector<std::string>& paths, std::vector<RuleSource>& out, std::string& why) {
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    if (!in || !(text << in.rdbuf())) {
      why = "cannot read '" + p + "'";
      return false;
    }
    out.push_back({p, text.str()});
  }
  return true;
}

// Takes the planned rules out of every phase, all or nothing: each id must name exactly one rule.
std::size_t remove_rules(modsecurity::RulesSet& set, const std::set<std::int64_t>& ids, std::string& why) {
  if (ids.empty()) return 0;
  const auto planned = [&](const std::shared_ptr<modsecurity::Rule>& r) {
    const auto* rule = dynamic_cast<const modsecurity::RuleWithActions*>(r.get());
    return rule != nullptr && ids.count(rule->m_ruleId) != 0 ? rule : nullptr;
  };
  std::map<std::int64_t, int> seen;
  for (int p = 0; p < modsecurity::Phases::NUMBER_OF_PHASES; ++p) {
    for (const auto& r : set.m_rulesSetPhases.at(p)->m_rules) {
      if (const auto* rule = planned(r)) ++seen[rule->m_ruleId];
    }
  }
  for (const std::int64_t id : ids) {
    if (seen[id] != 1) {
      why = "rule " + std::to_string(id) + " is in the compiled set " + std::to_string(seen[id]) + " times";
      return 0;
    }
  }
  for (int p = 0; p < modsecurity::Phases::NUMBER_OF_PHASES; ++p) {
    std::erase_if(set.m_rulesSetPhases.at(p)->m_rules, [&](const auto& r) { return planned(r) != nullptr; });
  }
  return ids.size();
}

}  // namespace

// ---- RuleSet ----

RuleSet::~RuleSet() = default;

modsecurity::ModSecurity* RuleSet::modsec() const noexcept { return engine_->modsec(); }

// ---- Engine ----

void Engine::ModSecDeleter::operator()(modsecurity::ModSecurity* m) const noexcept { delete m; }

Engine::~Engine() = default;

std::shared_ptr<Engine> Engine::create(const WafGlobalConfig& global, std::string& error) {
  std::shared_ptr<Engine> e(new (std::nothrow) Engine());
  if (!e) {
    error = "WAF: out of memory";
    return nullptr;
  }
  e->global_ = global;

  const fs::path rules_dir = fs::path(global.crs_dir) / "rules";
  std::error_code ec;
  if (!fs::is_directory(rules_dir, ec)) {
    error = "WAF: CRS rules directory '" + rules_dir.string() + "' does not exist";
    return nullptr;
  }
  for (fs::directory_iterator it(rules_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().extension() != ".conf") continue;
    const std::string file = it->path().filename().string();
    if (file.rfind("REQUEST-", 0) == 0) {
      e->request_files_.push_back(it->path().string());
    } else if (file.rfind("RESPONSE-", 0) == 0) {
      e->response_files_.push_back(it->path().string());
    }
  }
  if (ec) {
    error = "WAF: cannot list '" + rules_dir.string() + "': " + ec.message();
    return nullptr;
  }
  if (e->request_files_.empty()) {
    error = "WAF: no REQUEST-*.conf files in '" + rules_dir.string() + "'";
    return nullptr;
  }
  std::sort(e->request_files_.begin(), e->request_files_.end());
  std::sort(e->response_files_.begin(), e->response_files_.end());

  std::vector<std::string> files = e->request_files_;
  files.insert(files.end(), e->response_files_.begin(), e->response_files_.end());
  if (!global.crs_setup.empty()) files.push_back(global.crs_setup);
  files.insert(files.end(), global.extra_rule_files.begin(), global.extra_rule_files.end());
  for (const auto& f : files) {
    std::string why;
    if (!safe_path(f, why) || !readable_file(f, why, "WAF rule file")) {
      error = "WAF: " + why;
      return nullptr;
    }
  }

  e->modsec_.reset(new (std::nothrow) modsecurity::ModSecurity());
  if (!e->modsec_) {
    error = "WAF: out of memory";
    return nullptr;
  }
  e->modsec_->setConnectorInformation("gerbang");
  e->modsec_->setServerLogCb(&ignore_server_log, modsecurity::RuleMessageLogProperty);
  select_lowercase(e->modsec_->whoAmI(), e->lowercase_note_);
  return e;
}

std::string Engine::rule_text(const WafRouteConfig& r, bool internal_error_rule,
                              const std::vector<std::string>& defaults, std::string& error) const {
  using Mode = WafRouteConfig::Mode;
  if (r.mode == Mode::off) {
    error = "WAF mode is off: no rules to build";
    return {};
  }
  if (r.paranoia < 1 || r.paranoia > 4) {
    error = "WAF paranoia must be 1..4 (got " + std::to_string(r.paranoia) + ")";
    return {};
  }
  if (r.inbound_threshold < 1 || r.inbound_threshold > 10000 || r.outbound_threshold < 1 ||
      r.outbound_threshold > 10000) {
    error = "WAF anomaly thresholds must be 1..10000";
    return {};
  }
  if (r.body_inspection_limit < 1024 || r.body_inspection_limit > 64ull * 1024 * 1024) {
    error = "WAF body_inspection_limit must be 1 KiB..64 MiB";
    return {};
  }
  if (r.response_inspection_limit < 1024 || r.response_inspection_limit > 16ull * 1024 * 1024) {
    error = "WAF response_inspection_limit must be 1 KiB..16 MiB";
    return {};
  }
  if (!valid_methods(r.allowed_methods)) {
    error = "WAF allowed_methods must be upper-case method names separated by spaces";
    return {};
  }
  for (const int id : r.exclude_rules) {
    if (id < 1 || id > 9999999) {
      error = "WAF exclude_rules: rule id " + std::to_string(id) + " out of range 1..9999999";
      return {};
    }
  }
  for (const auto& x : r.exclude_targets) {
    if (x.rule < 1 || x.rule > 9999999) {
      error = "WAF exclude_targets: rule id " + std::to_string(x.rule) + " out of range 1..9999999";
      return {};
    }
    if (!valid_target(x.target)) {
      error = "WAF exclude_targets: target '" + x.target +
              "' must be COLLECTION or COLLECTION:key without quotes, commas or spaces";
      return {};
    }
  }

  std::string t;
  t.reserve(4096);
  const std::string limit = std::to_string(r.body_inspection_limit);
  // Engine and logging. Audit and debug logs are off: matches are read from the transaction.
  append_line(t, r.mode == Mode::block ? "SecRuleEngine On" : "SecRuleEngine DetectionOnly");
  append_line(t, "SecAuditEngine Off");
  append_line(t, "SecDebugLogLevel 0");
  // Request bodies. waf::Transaction never feeds past the limit except for the one chunk that crosses it,
  // which the engine truncates (ProcessPartial) while setting INBOUND_DATA_ERROR; the reject policy is ours.
  append_line(t, "SecRequestBodyAccess On");
  append_line(t, "SecRequestBodyLimit " + limit);
  append_line(t, "SecRequestBodyNoFilesLimit " + limit);
  append_line(t, "SecRequestBodyLimitAction ProcessPartial");
  append_line(t, "SecPcreMatchLimit 1000");
  append_line(t, "SecPcreMatchLimitRecursion 1000");
  append_line(t, "SecArgumentSeparator &");
  append_line(t, "SecCookieFormat 0");
  if (r.inspect_response) {
    append_line(t, "SecResponseBodyAccess On");
    append_line(t, "SecResponseBodyMimeType text/plain text/html text/xml application/json");
    append_line(t, "SecResponseBodyLimit " + std::to_string(r.response_inspection_limit));
    append_line(t, "SecResponseBodyLimitAction ProcessPartial");
  } else {
    append_line(t, "SecResponseBodyAccess Off");
  }
  // Body processors as CRS expects them (urlencoded and multipart are chosen by the engine itself).
  append_line(t,
              "SecRule REQUEST_HEADERS:Content-Type \"@rx ^(?:application(?:/soap\\+|/)|text/)xml\" "
              "\"id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML\"");
  append_line(t,
              "SecRule REQUEST_HEADERS:Content-Type \"@rx ^application/(?:[a-z0-9.-]+\\+)?json\" "
              "\"id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON\"");
  // A body that does not parse is refused — unless it was cut at the inspection limit (over_limit: pass),
  // where a parse error is expected and the rest is forwarded uninspected by configuration.
  append_line(t,
              "SecRule REQBODY_ERROR \"!@eq 0\" \"id:200002,phase:2,t:none,log,deny,status:400,"
              "msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2,chain\"");
  append_line(t, "SecRule INBOUND_DATA_ERROR \"@eq 0\" \"t:none\"");
  append_line(t,
              "SecRule MULTIPART_STRICT_ERROR \"!@eq 0\" \"id:200003,phase:2,t:none,log,deny,status:400,"
              "msg:'Multipart request body failed strict validation',severity:2,chain\"");
  append_line(t, "SecRule INBOUND_DATA_ERROR \"@eq 0\" \"t:none\"");
  append_line(t,
              "SecRule MULTIPART_UNMATCHED_BOUNDARY \"@eq 1\" \"id:200004,phase:2,t:none,log,deny,status:400,"
              "msg:'Multipart parser detected a possible unmatched boundary.',severity:2,chain\"");
  append_line(t, "SecRule INBOUND_DATA_ERROR \"@eq 0\" \"t:none\"");
  if (internal_error_rule) {
    append_line(t,
                "SecRule TX:/^MSC_/ \"!@streq 0\" \"id:200005,phase:2,t:none,log,deny,status:500,"
                "msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'\"");
  }

  // CRS setup, then the route's settings (after crs-setup.conf so they win; ids outside its template).
  if (!global_.crs_setup.empty()) {
    append_line(t, "Include \"" + global_.crs_setup + "\"");
  } else {
    append_line(t, "SecDefaultAction \"phase:1,log,auditlog,pass\"");
    append_line(t, "SecDefaultAction \"phase:2,log,auditlog,pass\"");
    append_line(t, "SecAction \"id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334\"");
  }
  t += route_settings(r);
  // CRS defaults that a CRS rule would set on every request (rule_pruning.hpp): set here instead, once per
  // request by one unconditional action, and that rule leaves the set.
  if (!defaults.empty()) {
    std::string a = "SecAction \"id:900803,phase:1,nolog,pass,t:none";
    for (const auto& d : defaults) a += ",setvar:'" + d + "'";
    append_line(t, a + "\"");
  }

  for (const auto& f : request_files_) append_line(t, "Include \"" + f + "\"");
  if (r.inspect_response) {
    for (const auto& f : response_files_) append_line(t, "Include \"" + f + "\"");
  }
  for (const auto& f : global_.extra_rule_files) append_line(t, "Include \"" + f + "\"");

  // Exclusions go after the rules they change (CRS's "after-CRS" place).
  std::set<int> removed(r.exclude_rules.begin(), r.exclude_rules.end());
  for (const int id : removed) append_line(t, "SecRuleRemoveById " + std::to_string(id));
  for (const auto& x : r.exclude_targets) {
    append_line(t, "SecRuleUpdateTargetById " + std::to_string(x.rule) + " \"!" + x.target + "\"");
  }
  // Settings applied by waf::Transaction rather than by rules still make a configuration distinct (the
  // text is the cache key, and RuleSet::config() is what transactions read).
  append_line(t, std::string("# over_limit: ") +
                     (r.over_limit == WafRouteConfig::OverLimit::reject ? "reject" : "pass"));
  return t;
}

std::shared_ptr<const RuleSet> Engine::rules_for(const WafRouteConfig& route, std::string& error) {
  // The full text is the cache key: it describes the route's configuration, and what the plan below leaves
  // out follows from it (and from the files, read once per engine generation as the includes are).
  const std::string key = rule_text(route, true, {}, error);
  if (key.empty()) return nullptr;

  std::lock_guard lock(mutex_);
  if (auto it = cache_.find(key); it != cache_.end()) {
    if (auto live = it->second.lock()) return live;
    cache_.erase(it);
  }

  // What this route can leave out (read from the files the engine is about to include).
  PrunePlan plan;
  if (global_.prune_unreachable_rules) {
    std::vector<RuleSource> before, crs, after;
    std::vector<std::string> crs_paths = request_files_;
    if (route.inspect_response) crs_paths.insert(crs_paths.end(), response_files_.begin(), response_files_.end());
    std::string why;
    if (read_sources(global_.crs_setup.empty() ? std::vector<std::string>{} : std::vector{global_.crs_setup},
                     before, why) &&
        read_sources(crs_paths, crs, why) && read_sources(global_.extra_rule_files, after, why)) {
      before.push_back({"route settings", route_settings(route)});  // they run after crs-setup.conf
      std::set<std::int64_t> excluded(route.exclude_rules.begin(), route.exclude_rules.end());
      for (const auto& x : route.exclude_targets) excluded.insert(x.rule);
      plan = plan_pruning(before, crs, after, route.paranoia, excluded);
    } else {
      plan.not_pruned_because = why;
    }
  } else {
    plan.not_pruned_because = "pruning is off";
  }
  const std::string text = plan.internal_error_rule_needed && plan.defaults.empty()
                               ? key
                               : rule_text(route, plan.internal_error_rule_needed, plan.defaults, error);

  std::shared_ptr<RuleSet> rs(new (std::nothrow) RuleSet());
  if (!rs) {
    error = "WAF: out of memory";
    return nullptr;
  }
  rs->engine_ = shared_from_this();
  rs->config_ = route;
  rs->rules_.reset(new (std::nothrow) modsecurity::RulesSet());
  if (!rs->rules_) {
    error = "WAF: out of memory";
    return nullptr;
  }
  int n = -1;
  try {  // the parser may throw (std::bad_alloc, std::regex_error from operators); keep it inside
    n = rs->rules_->load(text.c_str(), "gerbang-waf");
  } catch (const std::exception& ex) {
    error = std::string("WAF: rule loading failed: ") + ex.what();
    return nullptr;
  }
  if (n < 0) {
    std::string msg = rs->rules_->getParserError();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    error = "WAF: rule loading failed: " + (msg.empty() ? std::string("unknown parser error") : msg);
    return nullptr;
  }
  rs->rule_count_ = n;
  rs->not_pruned_because_ = plan.not_pruned_because;
  try {
    rs->pruned_ = remove_rules(*rs->rules_, plan.remove, rs->not_pruned_because_);
  } catch (const std::exception& ex) {  // bad_alloc while erasing leaves the set as it was
    rs->pruned_ = 0;
    rs->not_pruned_because_ = ex.what();
  }
  for (auto it = cache_.begin(); it != cache_.end();) {  // drop sets no generation uses any more
    it = it->second.expired() ? cache_.erase(it) : std::next(it);
  }
  cache_.emplace(key, rs);
  return rs;
}

std::size_t Engine::rule_set_count() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [text, weak] : cache_) n += weak.expired() ? 0 : 1;
  return n;
}

}  // namespace gerbang::policies::waf
