#include "policies/waf/rule_pruning.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "policies/text.hpp"

namespace gerbang::policies::waf {
namespace {

std::string_view unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && ((s.front() == '\'' && s.back() == '\'') || (s.front() == '"' && s.back() == '"'))) {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

std::optional<std::int64_t> to_int(std::string_view s) {
  s = trim(s);
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// One directive with its arguments (quoted ones unquoted, escapes kept as written).
struct Statement {
  std::string directive;  // lower case
  std::vector<std::string> args;
  std::string raw;
};

Statement tokenize(std::string raw) {
  Statement s;
  std::vector<std::string> toks;
  std::size_t i = 0;
  const std::size_t n = raw.size();
  while (true) {
    while (i < n && ascii_space(raw[i])) ++i;
    if (i >= n) break;
    std::string t;
    if (raw[i] == '"') {
      ++i;
      while (i < n && raw[i] != '"') {
        if (raw[i] == '\\' && i + 1 < n) {
          t += raw[i];
          t += raw[i + 1];
          i += 2;
          continue;
        }
        t += raw[i++];
      }
      ++i;
    } else {
      while (i < n && !ascii_space(raw[i])) t += raw[i++];
    }
    toks.push_back(std::move(t));
  }
  if (!toks.empty()) {
    s.directive = ascii_lower(toks.front());
    s.args.assign(toks.begin() + 1, toks.end());
  }
  s.raw = std::move(raw);
  return s;
}

// Lines joined at a trailing backslash; comment and blank lines between statements skipped.
std::vector<Statement> statements(std::string_view text) {
  std::vector<Statement> out;
  std::string cur;
  bool open = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!open) {
      const std::string_view t = trim(line);
      if (t.empty() || t.front() == '#') continue;
    }
    if (!line.empty() && line.back() == '\\') {
      cur.append(line.substr(0, line.size() - 1));
      open = true;
    } else {
      cur.append(line);
      out.push_back(tokenize(std::move(cur)));
      cur.clear();
      open = false;
    }
  }
  if (open && !trim(cur).empty()) out.push_back(tokenize(std::move(cur)));
  return out;
}

using Actions = std::vector<std::pair<std::string, std::string>>;  // name (lower case), value (unquoted)

Actions parse_actions(std::string_view s) {
  Actions out;
  std::size_t start = 0;
  bool quoted = false;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '\'') quoted = !quoted;
    if (i == s.size() || (s[i] == ',' && !quoted)) {
      const std::string_view piece = trim(s.substr(start, i - start));
      start = i + 1;
      if (piece.empty()) continue;
      const std::size_t colon = piece.find(':');
      if (colon == std::string_view::npos) {
        out.emplace_back(ascii_lower(piece), std::string());
      } else {
        out.emplace_back(ascii_lower(trim(piece.substr(0, colon))), std::string(unquote(piece.substr(colon + 1))));
      }
    }
  }
  return out;
}

int parse_phase(std::string_view v) {
  const std::string p = ascii_lower(trim(v));
  if (p == "request") return 2;
  if (p == "response") return 4;
  if (p == "logging") return 5;
  const auto n = to_int(p);
  return n && *n >= 1 && *n <= 5 ? static_cast<int>(*n) : 0;
}

// A rule (with its chain children), a marker, or another directive, in load order.
struct Rule {
  enum class Kind { rule, action, marker, other } kind = Kind::other;
  std::string directive;
  std::vector<std::string> args;
  std::int64_t id = -1;
  int phase = 0;  // 0: not given
  bool chain_open = false;
  std::string vars, op, skip_after, marker;
  Actions acts;          // the top statement's
  Actions all_acts;      // with the chain children's
  std::string all_lower; // raw text of the statement and its children, lower case
  std::size_t source = 0; // index into the sources, in load order
  std::vector<std::string> child_vars;  // the chain children's variables, lower case
};

// The actions argument: SecRule VARIABLES "OPERATOR" "ACTIONS", SecAction "ACTIONS".
std::string_view actions_of(const Statement& st) {
  const std::size_t at = st.directive == "secrule" ? 2 : 0;
  return st.args.size() > at ? std::string_view(st.args[at]) : std::string_view();
}

std::vector<Rule> parse_rules(const std::vector<const RuleSource*>& sources) {
  std::vector<Rule> rules;
  for (std::size_t si = 0; si < sources.size(); ++si) {
    const RuleSource* src = sources[si];
    bool chain_open = false;
    for (Statement& st : statements(src->text)) {
      const bool is_rule = st.directive == "secrule";
      const bool is_action = st.directive == "secaction";
      if ((is_rule || is_action) && chain_open && !rules.empty()) {
        Rule& parent = rules.back();
        const Actions a = parse_actions(actions_of(st));
        parent.all_acts.insert(parent.all_acts.end(), a.begin(), a.end());
        parent.all_lower += '\n' + ascii_lower(st.raw);
        if (is_rule && !st.args.empty()) parent.child_vars.push_back(ascii_lower(st.args[0]));
        chain_open = std::any_of(a.begin(), a.end(), [](const auto& x) { return x.first == "chain"; });
        continue;
      }
      chain_open = false;
      Rule r;
      r.source = si;
      r.directive = st.directive;
      r.args = st.args;
      r.all_lower = ascii_lower(st.raw);
      if (is_rule || is_action) {
        r.kind = is_rule ? Rule::Kind::rule : Rule::Kind::action;
        if (is_rule) {
          r.vars = st.args.size() > 0 ? st.args[0] : "";
          r.op = st.args.size() > 1 ? st.args[1] : "";
        }
        r.acts = parse_actions(actions_of(st));
        r.all_acts = r.acts;
        for (const auto& [name, value] : r.acts) {
          if (name == "id") r.id = to_int(value).value_or(-1);
          else if (name == "phase") r.phase = parse_phase(value);
          else if (name == "skipafter") r.skip_after = value;
          else if (name == "chain") chain_open = true;
        }
        r.chain_open = chain_open;
      } else if (st.directive == "secmarker") {
        r.kind = Rule::Kind::marker;
        r.marker = st.args.empty() ? "" : std::string(unquote(st.args[0]));
      }
      rules.push_back(std::move(r));
    }
  }
  return rules;
}

bool has_action(const Actions& acts, std::string_view name) {
  return std::any_of(acts.begin(), acts.end(), [&](const auto& a) { return a.first == name; });
}

// An action with no effect on a match: id, phase, pass, nolog, t:none and metadata (ver, rev, maturity,
// accuracy; not tag or msg, which SecRuleRemoveByTag/ByMsg and ctl:ruleRemoveByTag match).
bool inert_action(const std::string& name, const std::string& value) {
  return name == "id" || name == "phase" || name == "pass" || name == "nolog" || name == "ver" || name == "rev" ||
         name == "maturity" || name == "accuracy" || (name == "t" && ascii_lower(value) == "none");
}

// Inert actions and skipAfter: no effect but the skip (and MATCHED_VAR* when it matches).
bool only_skip_actions(const Rule& r) {
  if (r.kind != Rule::Kind::rule || r.chain_open || r.id < 0 || r.phase == 0 || r.skip_after.empty()) return false;
  return std::all_of(r.acts.begin(), r.acts.end(),
                     [](const auto& a) { return a.first == "skipafter" || inert_action(a.first, a.second); });
}

// The position of the first marker named `name` after position `k` of a phase's sequence, or its size.
std::size_t marker_after(const std::vector<Rule>& rules, const std::vector<std::size_t>& seq, std::size_t k,
                         const std::string& name) {
  std::size_t m = k + 1;
  while (m < seq.size() && !(rules[seq[m]].kind == Rule::Kind::marker && rules[seq[m]].marker == name)) ++m;
  return m;
}

// "@lt K" against TX:EXECUTING_PARANOIA_LEVEL: K, or nothing.
std::optional<std::int64_t> paranoia_skip_level(const Rule& r) {
  if (!only_skip_actions(r) || ascii_lower(trim(r.vars)) != "tx:executing_paranoia_level") return std::nullopt;
  const std::string op = ascii_lower(trim(r.op));
  if (!op.starts_with("@lt ")) return std::nullopt;
  return to_int(std::string_view(op).substr(4));
}

// "&TX:N|TX:N" "@eq 0": N, or nothing.
std::optional<std::string> unset_skip_variable(const Rule& r) {
  if (!only_skip_actions(r) || ascii_lower(trim(r.op)) != "@eq 0") return std::nullopt;
  const std::string v = ascii_lower(trim(r.vars));
  const std::size_t bar = v.find('|');
  if (bar == std::string::npos) return std::nullopt;
  std::string a = v.substr(0, bar), b = v.substr(bar + 1);
  if (b.starts_with("&")) std::swap(a, b);
  if (!a.starts_with("&tx:") || !b.starts_with("tx:")) return std::nullopt;
  const std::string n = a.substr(4);
  if (n.empty() || n != b.substr(3) || n.find_first_of("/:|&") != std::string::npos) return std::nullopt;
  return n;
}

// "1 2 10-20" (ids and ranges, space or comma separated) → does it name any id of `ids`?
bool names_any(std::string_view list, const std::set<std::int64_t>& ids) {
  std::size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (ascii_space(list[i]) || list[i] == ',')) ++i;
    std::size_t j = i;
    while (j < list.size() && !ascii_space(list[j]) && list[j] != ',') ++j;
    const std::string_view tok = unquote(list.substr(i, j - i));
    i = j;
    if (tok.empty()) continue;
    const std::size_t dash = tok.find('-', 1);
    const auto lo = to_int(dash == std::string_view::npos ? tok : tok.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? lo : to_int(tok.substr(dash + 1));
    if (!lo || !hi) return true;  // cannot tell: assume it does
    if (ids.lower_bound(*lo) != ids.end() && *ids.lower_bound(*lo) <= *hi) return true;
  }
  return false;
}

struct SetVarName {
  std::string literal;  // lower case, after "tx."; up to the first macro when dynamic
  bool dynamic = false;
};

std::vector<SetVarName> tx_setvars(const Actions& acts) {
  std::vector<SetVarName> out;
  for (const auto& [name, value] : acts) {
    if (name != "setvar") continue;
    std::string_view v = trim(value);
    const std::size_t eq = v.find('=');
    if (eq != std::string_view::npos) v = v.substr(0, eq);
    v = trim(v);
    if (!v.empty() && v.front() == '!') v.remove_prefix(1);
    const std::string n = ascii_lower(v);
    if (!n.starts_with("tx.") && !n.starts_with("tx:")) continue;
    SetVarName s;
    s.literal = n.substr(3);
    if (const std::size_t m = s.literal.find("%{"); m != std::string::npos) {
      s.literal.resize(m);
      s.dynamic = true;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

PrunePlan plan_pruning(const std::vector<RuleSource>& before, const std::vector<RuleSource>& crs,
                       const std::vector<RuleSource>& after, int paranoia, const std::set<std::int64_t>& excluded) {
  PrunePlan plan;
  std::vector<const RuleSource*> sources;
  for (const auto* list : {&before, &crs, &after}) {
    for (const auto& s : *list) sources.push_back(&s);
  }
  const std::vector<Rule> rules = parse_rules(sources);
  auto fail = [&](std::string why) {
    plan.remove.clear();
    plan.skip_rules_removed = 0;
    plan.not_pruned_because = std::move(why);
    return plan;
  };

  // What rules write: MSC_* (rule 200005), tx.executing_paranoia_level, and which names are ever set.
  std::map<std::string, int> writers;  // name → rules that set it
  std::vector<std::string> dynamic_prefixes;
  std::optional<std::string> level_writer;
  bool scripts = false;
  for (const Rule& r : rules) {
    if (r.directive == "secrulescript" || has_action(r.all_acts, "exec")) scripts = true;
    for (const SetVarName& s : tx_setvars(r.all_acts)) {
      if (s.dynamic) {
        dynamic_prefixes.push_back(s.literal);
        const bool could_be_level =
            std::string_view("executing_paranoia_level").starts_with(s.literal) ||
            std::string_view("paranoia_level").starts_with(s.literal);
        if (could_be_level && !level_writer) {
          level_writer = "a dynamically named TX variable (rule " + std::to_string(r.id) + ")";
        }
        continue;
      }
      ++writers[s.literal];
      if (s.literal == "executing_paranoia_level" || s.literal == "paranoia_level") {
        // The route's SecAction 900800 sets both in phase 1, after crs-setup.conf (whose phase-1 SecActions
        // it overrides) and before the CRS (whose defaults apply only to an unset variable).
        const bool ours = r.kind == Rule::Kind::action && r.id == 900800;
        const bool setup = r.kind == Rule::Kind::action && r.phase == 1 && r.source < before.size();
        const bool crs_default = r.kind == Rule::Kind::rule && ascii_lower(trim(r.vars)) == "&tx:" + s.literal &&
                                 ascii_lower(trim(r.op)) == "@eq 0";
        if (!ours && !setup && !crs_default && !level_writer) {
          level_writer = "rule " + std::to_string(r.id) + " sets tx." + s.literal;
        }
      }
    }
  }
  const bool msc_named = std::any_of(writers.begin(), writers.end(), [](const auto& w) {
    return w.first.starts_with("msc_");
  });
  const bool msc_dynamic = std::any_of(dynamic_prefixes.begin(), dynamic_prefixes.end(), [](const auto& p) {
    return std::string_view("msc_").starts_with(p) || p.starts_with("msc_");
  });
  plan.internal_error_rule_needed = scripts || msc_named || msc_dynamic;
  if (scripts) return fail("a Lua script (exec or SecRuleScript) could change anything");
  if (level_writer) return fail(*level_writer);
  for (const Rule& r : rules) {
    if (has_action(r.all_acts, "skip")) return fail("rule " + std::to_string(r.id) + " uses skip:N");
    if (r.directive == "secdefaultaction") {
      for (const auto& [name, value] : parse_actions(r.args.empty() ? "" : r.args[0])) {
        if (name == "skip" || name == "skipafter" || name == "ctl" || name == "exec" || name == "setvar" ||
            name == "allow" || name == "chain") {
          return fail("SecDefaultAction has " + name);
        }
      }
    }
  }

  // Whether tx.N may be set by more than `own` rules (by name, or by a dynamic name that could be N).
  auto set_elsewhere = [&](const std::string& n, int own) {
    const auto w = writers.find(n);
    if (w != writers.end() && w->second > own) return true;
    return std::any_of(dynamic_prefixes.begin(), dynamic_prefixes.end(),
                       [&](const std::string& p) { return n.starts_with(p); });
  };
  // Skip rules, and whether they always match for this route.
  auto always_matches = [&](const Rule& r) {
    if (const auto k = paranoia_skip_level(r)) return paranoia < *k;
    if (const auto n = unset_skip_variable(r)) return !set_elsewhere(*n, 0);
    return false;
  };
  // A rule on the route's (constant) level that cannot match: its evaluation clears MATCHED_VAR*.
  auto never_matches = [&](const Rule& r) {
    if (r.kind != Rule::Kind::rule) return false;
    for (const auto& [name, value] : r.acts) {
      if (name == "t" && ascii_lower(value) != "none") return false;
      if (name == "multimatch") return false;
    }
    const std::string v = ascii_lower(trim(r.vars)), op = ascii_lower(trim(r.op));
    if (v == "tx:executing_paranoia_level" && op == "@lt %{tx.paranoia_level}") return true;  // both the route's
    if (v != "tx:executing_paranoia_level" && v != "tx:paranoia_level") return false;
    const bool lt = op.starts_with("@lt "), ge = op.starts_with("@ge ");
    if (!lt && !ge) return false;
    const auto k = to_int(std::string_view(op).substr(4));
    if (!k) return false;
    return lt ? paranoia >= *k : paranoia < *k;
  };
  std::set<std::int64_t> skip_ids;
  for (const Rule& r : rules) {
    if (paranoia_skip_level(r) || unset_skip_variable(r)) skip_ids.insert(r.id);
  }
  for (const std::int64_t id : excluded) {
    if (skip_ids.count(id) != 0) return fail("the route excludes skip rule " + std::to_string(id));
  }

  // Per phase: the rules it evaluates (and every marker) in order; the regions of always-matching skip rules.
  struct Skip {
    std::size_t at, marker;  // positions in the phase's sequence
  };
  std::map<int, std::vector<std::size_t>> seq;
  std::map<int, std::vector<Skip>> skips;
  std::set<std::size_t> dead;  // rule indices never evaluated in their own phase
  for (int p = 1; p <= 5; ++p) {
    auto& s = seq[p];
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const Rule& r = rules[i];
      if (r.kind == Rule::Kind::marker || ((r.kind == Rule::Kind::rule || r.kind == Rule::Kind::action) &&
                                           (r.phase == p || r.phase == 0))) {
        s.push_back(i);
      }
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
      const Rule& r = rules[s[i]];
      if (r.kind == Rule::Kind::marker || r.phase != p || !always_matches(r)) continue;
      const std::size_t j = marker_after(rules, s, i, r.skip_after);
      if (j == s.size()) continue;  // no marker: the rest of the phase is skipped; leave it as it is
      for (std::size_t k = i + 1; k < j; ++k) {
        const Rule& x = rules[s[k]];
        if (x.kind == Rule::Kind::marker) {  // fine unless a rule before the region jumps to it
          for (std::size_t b = 0; b < i; ++b) {
            if (rules[s[b]].skip_after == x.marker) {
              return fail("rule " + std::to_string(rules[s[b]].id) + " skips into a region, to '" + x.marker + "'");
            }
          }
          continue;
        }
        if (x.phase == 0) return fail("rule " + std::to_string(x.id) + " has no phase");
        if (x.id < 0) return fail("a rule without id inside a skipped region");
        dead.insert(s[k]);
      }
      skips[p].push_back({i, j});
      i = j;
    }
  }

  // CRS defaults set on every request by a rule that always matches ("&TX:N" "@eq 0" → setvar:tx.N=V, with
  // nothing else setting N): the route's SecAction 900803 sets them before the CRS instead (rule_text), and
  // the rule, which then never matches, goes. Candidates here; the MATCHED_VAR* walk below decides.
  struct Default {
    std::size_t at;       // position in phase 1's sequence
    std::string setvar;   // "tx.N=V"
  };
  std::vector<Default> defaults;
  std::set<std::size_t> default_at;
  const auto& s1 = seq[1];
  for (std::size_t i = 0; i < s1.size(); ++i) {
    const Rule& r = rules[s1[i]];
    if (r.kind != Rule::Kind::rule || r.chain_open || !r.child_vars.empty() || r.phase != 1 || r.id < 0 ||
        dead.count(s1[i]) != 0 || excluded.count(r.id) != 0 || r.source < before.size() ||
        r.source >= before.size() + crs.size() || ascii_lower(trim(r.op)) != "@eq 0") {
      continue;
    }
    const std::string v = ascii_lower(trim(r.vars));
    if (!v.starts_with("&tx:")) continue;
    const std::string n = v.substr(4);
    if (n.empty() || n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) continue;
    std::string setvar;
    bool ok = true;
    for (const auto& [name, value] : r.acts) {
      if (inert_action(name, value)) continue;
      if (name != "setvar" || !setvar.empty()) {
        ok = false;
        break;
      }
      const std::size_t eq = value.find('=');
      const std::string target = ascii_lower(trim(std::string_view(value).substr(0, eq)));
      const std::string_view val =
          eq == std::string::npos ? std::string_view() : std::string_view(value).substr(eq + 1);
      if (eq == std::string::npos || target != "tx." + n || val.empty() || val.front() == '+' || val.front() == '-' ||
          val.find("%{") != std::string_view::npos || val.find_first_of("'\"\\\r\n") != std::string_view::npos) {
        ok = false;
        break;
      }
      setvar = "tx." + n + "=" + std::string(val);
    }
    if (!ok || setvar.empty() || set_elsewhere(n, 1)) continue;
    // Set earlier now: nothing in the CRS before it may read N (by name, or the whole TX collection).
    bool read_before = false;
    for (std::size_t j = 0; j < i && !read_before; ++j) {
      const Rule& y = rules[s1[j]];
      if (y.kind == Rule::Kind::marker || y.source < before.size()) continue;
      if (y.all_lower.find(n) != std::string::npos || y.all_lower.find("tx:/") != std::string::npos) {
        read_before = true;
      }
      std::vector<std::string> var_lists = y.child_vars;
      var_lists.push_back(ascii_lower(y.vars));
      for (const auto& list : var_lists) {
        std::size_t a = 0;
        while (a <= list.size()) {
          std::size_t b = list.find('|', a);
          if (b == std::string::npos) b = list.size();
          std::string_view tok = trim(std::string_view(list).substr(a, b - a));
          while (!tok.empty() && (tok.front() == '!' || tok.front() == '&')) tok.remove_prefix(1);
          if (tok == "tx") read_before = true;
          a = b + 1;
        }
      }
    }
    if (read_before) continue;
    defaults.push_back({i, setvar});
    default_at.insert(i);
  }

  // Anything live that removes a skip rule or a default rule at run time (or by configuration), or the
  // route's 900803, would change what runs.
  std::set<std::int64_t> guarded = skip_ids;
  for (const Default& d : defaults) guarded.insert(rules[s1[d.at]].id);
  if (!defaults.empty()) guarded.insert(900803);
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    if (dead.count(i) == 0) {
      for (const auto& [name, value] : r.all_acts) {
        if (name != "ctl") continue;
        const std::string v = ascii_lower(value);
        const std::size_t eq = v.find('=');
        if (eq == std::string::npos) continue;
        const std::string what = std::string(trim(std::string_view(v).substr(0, eq)));
        const std::string_view arg = std::string_view(v).substr(eq + 1);
        if (what == "ruleremovebyid" && names_any(arg, guarded)) {
          return fail("rule " + std::to_string(r.id) + " removes a skip rule at run time (ctl:ruleRemoveById)");
        }
        if (what == "ruleremovetargetbyid" && names_any(arg.substr(0, arg.find(';')), guarded)) {
          return fail("rule " + std::to_string(r.id) + " changes a skip rule's targets at run time");
        }
      }
    }
    if ((r.directive == "secruleremovebyid" || r.directive == "secruleupdatetargetbyid" ||
         r.directive == "secruleupdateactionbyid") &&
        !r.args.empty()) {
      std::string list;
      if (r.directive == "secruleremovebyid") {
        for (const auto& a : r.args) list += a + ' ';
      } else {
        list = r.args[0].substr(0, r.args[0].find(':'));
      }
      if (names_any(list, guarded)) return fail(r.directive + " names a skip rule");
    }
  }
  if (excluded.count(900803) != 0) {
    defaults.clear();
    default_at.clear();
  }

  // From a removed rule that matched on every request on, every way the evaluation can go must reach a rule
  // that does not match (it clears MATCHED_VAR*) before anything reads MATCHED_* or leaves the phase. A
  // SecRule that does not match clears them (a chain child that does not match too); only its matching path
  // goes on. A rule whose only MATCHED_ reads are %{MATCHED_VAR} / %{MATCHED_VAR_NAME} in its own actions
  // reads its own match (set before its actions run).
  auto reads_matched = [&](const Rule& x) {
    if (x.all_lower.find("matched_") == std::string::npos) return false;
    if (x.kind != Rule::Kind::rule || !x.child_vars.empty() || x.chain_open) return true;
    const auto mentions = [](const std::string& t) { return ascii_lower(t).find("matched_") != std::string::npos; };
    if (mentions(x.vars) || mentions(x.op)) return true;
    for (const auto& [name, value] : x.acts) {
      std::string v = ascii_lower(value);
      for (const std::string m : {"%{matched_var_name}", "%{matched_var}"}) {
        for (std::size_t at = v.find(m); at != std::string::npos; at = v.find(m)) v.erase(at, m.size());
      }
      if (v.find("matched_") != std::string::npos || name.find("matched_") != std::string::npos) return true;
    }
    return false;
  };
  // Actions that could end or reorder the evaluation (a ctl that turns the engine off ends it: nothing is
  // evaluated after it, and the rest of the walk covers the case where the phase goes on).
  auto changes_flow = [](const Rule& x) {
    return std::any_of(x.all_acts.begin(), x.all_acts.end(), [](const auto& a) {
      const std::string& n = a.first;
      if (n == "ctl") {
        const std::string v = ascii_lower(a.second);
        return !(v == "ruleengine=off" || v.starts_with("auditengine=") || v.starts_with("auditlogparts=") ||
                 v.starts_with("forcerequestbodyvariable=") || v.starts_with("requestbodyprocessor=") ||
                 v.starts_with("requestbodyaccess="));
      }
      return n == "deny" || n == "drop" || n == "block" || n == "allow" || n == "redirect" || n == "proxy" ||
             n == "pause" || n == "skip" || n == "exec" || n == "multimatch";
    });
  };
  auto walk_clears = [&](int p, std::size_t k, const std::set<std::size_t>& matching) {
    const auto& s = seq[p];
    const auto& list = skips[p];
    while (k < s.size()) {
      const Rule& x = rules[s[k]];
      if (x.kind == Rule::Kind::marker || matching.count(k) != 0) {  // a removed default: matches, reads nothing
        ++k;
        continue;
      }
      const auto skip = std::find_if(list.begin(), list.end(), [&](const Skip& sk) { return sk.at == k; });
      if (skip != list.end()) {  // matches too: only adds to MATCHED_VARS, and jumps
        k = skip->marker + 1;
        continue;
      }
      if (x.phase == p && never_matches(x)) return true;
      if (reads_matched(x) || changes_flow(x)) return false;
      if (!x.skip_after.empty()) {
        k = marker_after(rules, s, k, x.skip_after);
        if (k == s.size()) return false;
      }
      ++k;
    }
    return false;
  };

  // The removals: every dead rule; each always-matching skip rule and default rule whose MATCHED_VAR* cannot
  // be seen.
  for (const std::size_t i : dead) plan.remove.insert(rules[i].id);
  for (int p = 1; p <= 5; ++p) {
    for (const Skip& sk : skips[p]) {
      if (walk_clears(p, sk.marker + 1, p == 1 ? default_at : std::set<std::size_t>{})) {
        plan.remove.insert(rules[seq[p][sk.at]].id);
        ++plan.skip_rules_removed;
      }
    }
  }
  for (const Default& d : defaults) {
    if (!walk_clears(1, d.at + 1, default_at)) continue;
    plan.remove.insert(rules[s1[d.at]].id);
    plan.defaults.push_back(d.setvar);
  }
  return plan;
}

}  // namespace gerbang::policies::waf
